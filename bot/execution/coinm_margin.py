"""A COIN-M hedge's coin moved between the spot and COIN-M wallets, and recorded.

The coin a COIN-M hedge buys is its short's margin: a universal transfer (`MAIN_CMFUTURE`,
back `CMFUTURE_MAIN`) moves it. A transfer has no client id to look it up by, so it is
resolved by balances: before sending, the destination wallet's balance and the amount are
written to the hedge (`coinm_pending`); after an answer that may hide a done transfer
(timeout, lost connection, 5xx), the destination is read again and the transfer counts as
done only when the balance rose by the amount. A transfer known not done is retried with
backoff; one that cannot be told stays pending with an alert and is resolved before
anything else is sent for the hedge (`resolve_pending`).

The ledger keeps, per hedge, the coin it holds in the COIN-M wallet (`coinm_margin` in
the hedge's metrics), a `transfers` row per request (written PENDING before it is sent,
then DONE with Binance's `tranId`, DONE_BY_BALANCE when a lost answer was resolved by the
balance, FAILED, or UNKNOWN until resolved) and an event per transfer
(`hedge.margin_transferred`, or `hedge.transfer_failed` / `hedge.transfer_unresolved` with
an alert).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from bot.domain import Hedge, Severity
from bot.domain.ledger import TransferStatus
from bot.errors import ExchangeError, TemporaryError
from bot.exchange.port import CoinmPort
from bot.execution.hedge_context import ZERO, HedgeContext

log = logging.getLogger(__name__)

COIN_STEP = Decimal("0.00000001")  # Binance moves coin in 8 decimals
MARGIN, PENDING, BEFORE, DIRECTION = "coinm_margin", "coinm_pending", "coinm_before", "coinm_to"
TRANSFER_ID = "coinm_transfer_id"  # the `transfers` row of the pending transfer
_DONE = (TransferStatus.DONE, TransferStatus.DONE_BY_BALANCE)


def to_coin(amount: Decimal) -> Decimal:
    """Round a coin amount down to the 8 decimals a transfer takes."""
    return amount.quantize(COIN_STEP, rounding=ROUND_DOWN)


def margin_of(hedge: Hedge) -> Decimal:
    """The coin `hedge` holds in the COIN-M wallet, as the ledger knows it."""
    return Decimal(hedge.metrics.get(MARGIN, "0"))


@dataclass(frozen=True, slots=True)
class Moved:
    """What one `move` did: `done` (True), not done (False) or cannot tell (None)."""

    hedge: Hedge
    done: bool | None
    error: str = ""


class CoinMargin:
    """Moves a hedge's coin between wallets with retries, resolving lost answers by balance."""

    def __init__(self, ctx: HedgeContext, side: CoinmPort) -> None:
        self._ctx = ctx
        self._side = side

    async def move(
        self, hedge: Hedge, asset: str, amount: Decimal, *, into: bool, attempts: int, reason: str
    ) -> Moved:
        """Move `amount` of `asset` into the COIN-M wallet (`into`) or back to spot; every
        request is a `transfers` row with `reason`."""
        amount = to_coin(amount)
        if amount <= 0:
            return Moved(hedge, True)
        error = ""
        for attempt in range(attempts):
            try:
                before = await self._destination(asset, into)
            except ExchangeError as exc:
                error = f"balance not read: {exc}"
            else:
                source, target = _wallets(into)
                record = await self._ctx.ledger.transfers.request(
                    hedge_id=hedge.id,
                    asset=asset,
                    amount=amount,
                    from_wallet=source,
                    to_wallet=target,
                    reason=reason,
                    at=self._ctx.clock.now(),
                )
                hedge = await self._note(
                    hedge,
                    {
                        PENDING: str(amount),
                        BEFORE: str(before),
                        DIRECTION: _to(into),
                        TRANSFER_ID: str(record.id),
                    },
                )
                status, error, tran_id = await self._send(asset, amount, into, before)
                await self._ctx.ledger.transfers.finish(
                    record.id,
                    status=status,
                    at=self._ctx.clock.now(),
                    exchange_id=tran_id,
                    error=error or None,
                )
                done = None if status is TransferStatus.UNKNOWN else status in _DONE
                if done is None:
                    await self._ctx.emit(
                        "hedge.transfer_unresolved",
                        f"hedge {hedge.id}: transfer of {amount} {asset} {_path(into)} has an "
                        f"unknown outcome ({error}); nothing more is sent until it is resolved",
                        Severity.ALERT,
                        {"asset": asset, "amount": str(amount), "to": _to(into)},
                        hedge.id,
                    )
                    return Moved(hedge, None, error)
                if done:
                    return Moved(await self._landed(hedge, asset, amount, into), True)
                hedge = await self._note(hedge, {}, clear=True)
            if attempt == 0:
                await self._ctx.emit(
                    "hedge.transfer_failed",
                    f"hedge {hedge.id}: transfer of {amount} {asset} {_path(into)} failed: "
                    f"{error}" + ("; retrying" if attempts > 1 else ""),
                    Severity.ALERT,
                    {"asset": asset, "amount": str(amount), "to": _to(into), "error": error},
                    hedge.id,
                )
            if attempt + 1 < attempts:
                await self._ctx.clock.sleep(
                    self._ctx.risk.close_retry_backoff_seconds * (2**attempt)
                )
        return Moved(hedge, False, error)

    async def resolve_pending(self, hedge: Hedge, asset: str) -> Moved:
        """Settle a transfer left pending (crash or unknown answer) from the balances now."""
        pending = hedge.metrics.get(PENDING)
        if pending is None:
            return Moved(hedge, True)
        amount, before = Decimal(pending), Decimal(hedge.metrics.get(BEFORE, "0"))
        into = hedge.metrics.get(DIRECTION) == "coinm"
        try:
            now = await self._destination(asset, into)
        except ExchangeError as exc:
            return Moved(hedge, None, f"balance not read: {exc}")
        landed = now - before >= amount
        record = hedge.metrics.get(TRANSFER_ID)
        if record is not None:
            await self._ctx.ledger.transfers.finish(
                int(record),
                status=TransferStatus.DONE_BY_BALANCE if landed else TransferStatus.FAILED,
                at=self._ctx.clock.now(),
                error=None if landed else "never landed (destination balance)",
            )
        if landed:
            return Moved(await self._landed(hedge, asset, amount, into), True)
        log.info("Hedge %s: pending transfer of %s %s never landed", hedge.id, amount, asset)
        return Moved(await self._note(hedge, {}, clear=True), False, "never landed")

    async def _send(
        self, asset: str, amount: Decimal, into: bool, before: Decimal
    ) -> tuple[TransferStatus, str, str | None]:
        """Send one transfer: its status, the error if any, and the exchange's id."""
        source, target = _wallets(into)
        try:
            tran_id = await self._ctx.exchange.transfer(
                asset, amount, from_wallet=source, to_wallet=target
            )
            return TransferStatus.DONE, "", tran_id
        except TemporaryError as exc:  # may have been done: the balance says
            try:
                now = await self._destination(asset, into)
            except ExchangeError:
                return TransferStatus.UNKNOWN, str(exc), None
            landed = now - before >= amount
            return (
                (TransferStatus.DONE_BY_BALANCE if landed else TransferStatus.FAILED),
                str(exc),
                None,
            )
        except ExchangeError as exc:
            return TransferStatus.FAILED, str(exc), None

    async def _destination(self, asset: str, into: bool) -> Decimal:
        if into:
            return (await self._side.fetch_coinm_account(asset)).wallet_balance
        balance = (await self._ctx.exchange.fetch_spot_balances()).get(asset)
        return balance.total if balance is not None else ZERO

    async def _landed(self, hedge: Hedge, asset: str, amount: Decimal, into: bool) -> Hedge:
        margin = margin_of(hedge) + (amount if into else -amount)
        hedge = await self._note(hedge, {MARGIN: str(max(margin, ZERO))}, clear=True)
        await self._ctx.emit(
            "hedge.margin_transferred",
            f"hedge {hedge.id}: {amount} {asset} moved {_path(into)}",
            Severity.INFO,
            {"asset": asset, "amount": str(amount), "to": _to(into), "margin": str(margin)},
            hedge.id,
        )
        return hedge

    async def _note(self, hedge: Hedge, fields: dict[str, str], *, clear: bool = False) -> Hedge:
        metrics = dict(hedge.metrics)
        if clear:
            for key in (PENDING, BEFORE, DIRECTION, TRANSFER_ID):
                metrics.pop(key, None)
        metrics.update(fields)
        return await self._ctx.ledger.hedges.update(
            hedge.id, at=self._ctx.clock.now(), metrics=metrics
        )


def _wallets(into: bool) -> tuple[str, str]:
    return ("spot", "coinm") if into else ("coinm", "spot")


def _to(into: bool) -> str:
    return "coinm" if into else "spot"


def _path(into: bool) -> str:
    return "spot -> COIN-M" if into else "COIN-M -> spot"
