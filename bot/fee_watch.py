"""Live fees: the account's rates read at start and every `fee_refresh_seconds`.

The rates in force (VIP tier, BNB discount applied) replace `[fees]` in the strategy's
cost estimates and in the executor; paper and backtest exchanges have no account to ask,
so `[fees]` stays in force there. A failed read keeps the rates in force and is retried
after `RETRY_SECONDS`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from bot.clock import Clock
from bot.domain import Event, EventSink, Pair, Severity
from bot.domain.fee_schedule import AccountFees
from bot.domain.params import FeeParams
from bot.errors import CarrybotError

log = logging.getLogger(__name__)
RETRY_SECONDS = 300.0


class FeeWatch:
    """Read the account's fees when due; hand `apply` the rates paid and what was read."""

    def __init__(
        self,
        exchange: object,
        clock: Clock,
        events: EventSink,
        apply: Callable[[FeeParams, AccountFees], None],
        *,
        every_seconds: float,
    ) -> None:
        self._fetch = getattr(exchange, "fetch_account_fees", None)
        self._clock = clock
        self._events = events
        self._apply = apply
        self._every = timedelta(seconds=every_seconds)
        self._due: datetime | None = None
        self.account: AccountFees | None = None

    @property
    def live(self) -> bool:
        """Whether the exchange has an account to read fees from."""
        return self._fetch is not None

    async def tick(self, pairs: Sequence[Pair]) -> FeeParams | None:
        """Read and apply the account's fees if due; return the rates applied, else None."""
        now = self._clock.now()
        if self._fetch is None or not pairs or (self._due is not None and now < self._due):
            return None
        try:
            account: AccountFees = await self._fetch(pairs)
        except (CarrybotError, ValueError) as exc:
            self._due = now + timedelta(seconds=RETRY_SECONDS)
            log.warning("Account fees not read (%s); the rates in force stay", exc)
            return None
        self._due = now + self._every
        fees = FeeParams.of_account(account)
        changed = account != self.account
        self.account = account
        self._apply(fees, account)
        if changed:
            message = (
                f"fees from the account: VIP {account.vip_tier}, spot taker "
                f"{fees.spot_taker:.6f}, futures taker {fees.futures_taker:.6f} "
                f"(BNB pays spot: {account.spot_bnb}, futures: {account.futures_bnb})"
            )
            log.info(message)
            await self._events.emit(
                Event(
                    "fees.updated",
                    message,
                    now,
                    Severity.INFO,
                    {
                        "vip_tier": account.vip_tier,
                        "spot_taker": str(fees.spot_taker),
                        "spot_maker": str(fees.spot_maker),
                        "futures_taker": str(fees.futures_taker),
                        "futures_maker": str(fees.futures_maker),
                        "spot_bnb": account.spot_bnb,
                        "futures_bnb": account.futures_bnb,
                    },
                )
            )
        return fees
