"""The Binance account through ccxt: balances, futures account, positions, settings, funding.

Position mode, leverage and margin mode are per account or symbol; setting a value that is
already set is not an error (Binance's "no need to change" codes are swallowed). Transfers
move funds between the spot and USDⓈ-M wallets. Funding payments are read window by window
from the income history.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any

from bot.clock import ms_from_utc
from bot.domain import (
    Balance,
    FundingPayment,
    FuturesAccount,
    MarginMode,
    MarketKind,
    Pair,
    Position,
    PositionMode,
)
from bot.domain.fee_schedule import AccountFees
from bot.errors import BadResponseError, FatalExchangeError, OrderRejected
from bot.exchange import binance_parse as parse
from bot.exchange import ccxt_calls as calls
from bot.exchange.binance_fees import read_account_fees
from bot.exchange.ccxt_calls import BinanceSession
from bot.exchange.ccxt_market_data import PAGE, BinanceMarketData
from bot.exchange.history_pages import INCOME_WINDOW, read_windows
from bot.exchange.translate import NO_CHANGE_MARGIN, NO_CHANGE_POSITION_MODE

logger = logging.getLogger(__name__)

_SPOT = {"type": "spot"}
_LINEAR = {"type": "swap", "subType": "linear"}


class BinanceAccount:
    """Balances, positions and account settings of one Binance account (keys required)."""

    def __init__(self, session: BinanceSession, markets: BinanceMarketData) -> None:
        self._s = session
        self._markets = markets

    async def fetch_spot_balances(self) -> Mapping[str, Balance]:
        self._s.require_keys("fetch_spot_balances")
        raw = await self._s.call(
            "spot account",
            lambda: self._s.client.fetch_balance({**_SPOT, "omitZeroBalances": "true"}),
            signed_read=True,
        )
        return calls.parse_info(raw, "spot account", parse.spot_balances)

    async def fetch_futures_account(self) -> FuturesAccount:
        self._s.require_keys("fetch_futures_account")
        raw = await self._s.call(
            "futures account", lambda: self._s.client.fetch_balance(dict(_LINEAR)), signed_read=True
        )
        return calls.parse_info(raw, "futures account", parse.futures_account)

    async def fetch_positions(self) -> Sequence[Position]:
        self._s.require_keys("fetch_positions")
        await self._markets.load_instruments()
        raw = await self._s.call(
            "positions", lambda: self._s.client.fetch_positions(None, {}), signed_read=True
        )
        out = []
        for info in calls.infos(raw, "positionRisk"):
            inst = self._markets.find(True, info.get("symbol"))
            if inst is None:
                continue
            try:
                pos = parse.position(info, inst.symbol)
            except (ValueError, KeyError) as exc:
                logger.error("Dropping positionRisk row of %s: %s", inst.symbol, exc)
                continue
            if pos.size > 0:
                out.append(pos)
        return out

    async def fetch_account_fees(self, pairs: Sequence[Pair]) -> AccountFees:
        """Return the account's fee rates, VIP tier and BNB burn (see `binance_fees`)."""
        self._s.require_keys("fetch_account_fees")
        await self._markets.load_instruments()
        return await read_account_fees(self._s.client, self._s.call, pairs)

    async def fetch_position_mode(self) -> PositionMode:
        self._s.require_keys("fetch_position_mode")
        raw = await self._s.call(
            "position mode",
            lambda: self._s.client.fetch_position_mode(None, {"subType": "linear"}),
            signed_read=True,
        )
        hedged = raw.get("hedged") if isinstance(raw, dict) else None
        if not isinstance(hedged, bool):
            raise BadResponseError("positionSide/dual: expected dualSidePosition")
        return PositionMode.HEDGE if hedged else PositionMode.ONE_WAY

    async def set_position_mode(self, mode: PositionMode) -> None:
        self._s.require_keys("set_position_mode")
        hedged = mode is PositionMode.HEDGE
        try:
            await self._s.call(
                "set position mode",
                lambda: self._s.client.set_position_mode(hedged, None, dict(_LINEAR)),
            )
        except OrderRejected as exc:
            if exc.code != NO_CHANGE_POSITION_MODE:
                raise

    async def set_leverage(self, symbol: str, leverage: int) -> None:
        self._s.require_keys("set_leverage")
        await self._markets.instrument(symbol)
        await self._s.call(
            f"set leverage {symbol}", lambda: self._s.client.set_leverage(leverage, symbol)
        )

    async def set_margin_mode(self, symbol: str, mode: MarginMode) -> None:
        self._s.require_keys("set_margin_mode")
        await self._markets.instrument(symbol)
        margin_mode = mode.value
        try:
            await self._s.call(
                f"set margin mode {symbol}",
                lambda: self._s.client.set_margin_mode(margin_mode, symbol),
            )
        except OrderRejected as exc:
            if exc.code != NO_CHANGE_MARGIN:
                raise

    async def transfer(
        self, asset: str, amount: Decimal, *, from_wallet: str, to_wallet: str
    ) -> str | None:
        # ccxt's account names: MAIN_UMFUTURE / MAIN_CMFUTURE universal transfers.
        accounts = {"spot": "spot", "futures": "linear", "coinm": "inverse"}
        if from_wallet not in accounts or to_wallet not in accounts or from_wallet == to_wallet:
            raise FatalExchangeError(
                f"transfer from {from_wallet!r} to {to_wallet!r}: wallets are 'spot', "
                "'futures' and 'coinm'"
            )
        self._s.require_keys("transfer")
        answer = await self._s.call(
            f"transfer {amount} {asset} {from_wallet}->{to_wallet}",
            lambda: self._s.client.transfer(
                asset, float(amount), accounts[from_wallet], accounts[to_wallet]
            ),
        )
        logger.info("Transferred %s %s from %s to %s", amount, asset, from_wallet, to_wallet)
        tran_id = answer.get("id") if isinstance(answer, dict) else None
        return str(tran_id) if tran_id not in (None, "") else None

    async def _funding_payments(
        self, since: datetime, symbol: str | None, sub_type: str
    ) -> list[FundingPayment]:
        async def page(start: int, end: int | None) -> tuple[list[FundingPayment], int]:
            params: dict[str, Any] = {"until": end} if end is not None else {}
            if symbol is None:
                params["subType"] = sub_type
            raw = await self._s.call(
                "funding payments" if sub_type == "linear" else "COIN-M funding payments",
                partial(self._s.client.fetch_funding_history, symbol, start, PAGE, params),
                signed_read=True,
            )
            rows = list(calls.infos(raw, "income"))
            payments = []
            for info in rows:
                inst = self._markets.find(True, info.get("symbol"))
                if inst is None:
                    continue
                try:
                    payments.append(parse.funding_payment(info, inst.symbol))
                except (ValueError, KeyError) as exc:
                    logger.error("Dropping income row of %s: %s", inst.symbol, exc)
            return payments, len(rows)

        return await read_windows(
            page,
            start_ms=ms_from_utc(since),
            end_ms=self._s.history_end_ms(),
            window=INCOME_WINDOW,
            limit=PAGE,
            time_ms=lambda p: ms_from_utc(p.funding_time),
        )

    async def fetch_funding_payments(
        self, since: datetime, symbol: str | None = None
    ) -> Sequence[FundingPayment]:
        """Funding paid or received since `since`, window by window up to now (USDⓈ-M's
        income, and COIN-M's when a COIN-M perpetual is loaded: paid in the coin)."""
        self._s.require_keys("fetch_funding_payments")
        instruments = await self._markets.load_instruments()
        sub_types = ["linear"]
        if symbol is None and any(
            i.is_inverse and i.kind is MarketKind.PERPETUAL for i in instruments.values()
        ):
            sub_types.append("inverse")
        payments: list[FundingPayment] = []
        for sub_type in sub_types:
            payments += await self._funding_payments(since, symbol, sub_type)
        unique = {(p.symbol, p.funding_time, p.income_id): p for p in payments}
        return sorted(unique.values(), key=lambda p: (p.funding_time, p.symbol))
