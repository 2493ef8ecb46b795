"""Position mode, leverage and margin mode: detected at start-up, set before the first trade.

The close flags follow the mode: one-way closes with `reduceOnly=true` (positionSide omitted,
i.e. BOTH); hedge mode closes with `positionSide=SHORT` and no reduceOnly, which Binance
rejects there. COIN-M (dapi) has its own position mode, detected and set apart from
USDⓈ-M's (`coinm=True`), with the same flags.
"""

from __future__ import annotations

import logging

from bot.clock import Clock
from bot.config import ExchangeConfig
from bot.domain import Event, EventSink, MarginMode, PositionMode, PositionSide, Severity
from bot.errors import FatalExchangeError
from bot.exchange.port import ExchangePort, coinm_of

log = logging.getLogger(__name__)


class AccountSetup:
    """Knows the account's position mode and which perpetuals are configured."""

    def __init__(
        self, exchange: ExchangePort, config: ExchangeConfig, events: EventSink, clock: Clock
    ) -> None:
        self._exchange = exchange
        self._config = config
        self._events = events
        self._clock = clock
        self._mode: PositionMode | None = None
        self._coinm_mode: PositionMode | None = None
        self._prepared: set[str] = set()

    @property
    def leverage(self) -> int:
        return self._config.leverage

    @property
    def mode(self) -> PositionMode:
        if self._mode is None:
            raise FatalExchangeError("position mode not detected yet: call detect() first")
        return self._mode

    def coinm_mode(self) -> PositionMode:
        if self._coinm_mode is None:
            raise FatalExchangeError("COIN-M position mode not detected yet: detect(coinm=True)")
        return self._coinm_mode

    async def detect(self, *, coinm: bool = False) -> PositionMode:
        """Read the account's mode (USDⓈ-M, or COIN-M's own); switch to the configured one
        when flat, else keep it."""
        side = coinm_of(self._exchange) if coinm else None
        if coinm and side is None:
            raise FatalExchangeError("this exchange has no COIN-M side loaded")
        fetch = side.fetch_coinm_position_mode if side else self._exchange.fetch_position_mode
        switch = side.set_coinm_position_mode if side else self._exchange.set_position_mode
        actual = await fetch()
        wanted = self._config.position_mode
        if wanted != "auto" and actual.value != wanted:
            target = PositionMode(wanted)
            positions = [
                p
                for p in await self._exchange.fetch_positions()
                if ("/USD:" in p.symbol) == coinm  # COIN-M contracts: BTC/USD:BTC-YYMMDD
            ]
            if positions:
                await self._events.emit(
                    Event(
                        "account.position_mode_kept",
                        f"account is in {actual.value} mode with open positions; configured "
                        f"{wanted} cannot be set now, trading in {actual.value}",
                        self._clock.now(),
                        Severity.ALERT,
                        {"actual": actual.value, "configured": wanted},
                    )
                )
            else:
                await switch(target)
                log.info("Position mode set from %s to %s", actual.value, target.value)
                actual = target
        if coinm:
            self._coinm_mode = actual
            return actual
        if self._mode is not None and self._mode is not actual:
            await self._events.emit(
                Event(
                    "account.position_mode_changed",
                    f"position mode changed from {self._mode.value} to {actual.value}",
                    self._clock.now(),
                    Severity.ALERT,
                    {"from": self._mode.value, "to": actual.value},
                )
            )
        self._mode = actual
        return actual

    async def ensure_detected(self, *, coinm: bool = False) -> None:
        """Detect the (USDⓈ-M or COIN-M) position mode unless it is known already."""
        if (self._coinm_mode if coinm else self._mode) is None:
            await self.detect(coinm=coinm)

    async def prepare(self, perp_symbol: str, *, coinm: bool = False) -> None:
        """Set margin mode and leverage on `perp_symbol` once per process."""
        if perp_symbol in self._prepared:
            return
        if self._mode is None:
            await self.detect()
        if coinm and self._coinm_mode is None:
            await self.detect(coinm=True)
        await self._exchange.set_margin_mode(perp_symbol, MarginMode(self._config.margin_mode))
        await self._exchange.set_leverage(perp_symbol, self._config.leverage)
        self._prepared.add(perp_symbol)
        log.info(
            "Prepared %s: %s margin, %sx",
            perp_symbol,
            self._config.margin_mode,
            self._config.leverage,
        )

    def open_short_flags(self, *, coinm: bool = False) -> tuple[PositionSide | None, bool]:
        """Return (positionSide, reduceOnly) for selling to open or add to the short."""
        mode = self.coinm_mode() if coinm else self.mode
        return (PositionSide.SHORT, False) if mode is PositionMode.HEDGE else (None, False)

    def close_short_flags(self, *, coinm: bool = False) -> tuple[PositionSide | None, bool]:
        """Return (positionSide, reduceOnly) for buying to close the short."""
        mode = self.coinm_mode() if coinm else self.mode
        return (PositionSide.SHORT, False) if mode is PositionMode.HEDGE else (None, True)
