"""Position mode, leverage and margin mode: detected at start-up, set before the first trade.

The close flags follow the mode: one-way closes with `reduceOnly=true` (positionSide omitted,
i.e. BOTH); hedge mode closes with `positionSide=SHORT` and no reduceOnly, which Binance
rejects there.
"""

from __future__ import annotations

import logging

from bot.clock import Clock
from bot.config import ExchangeConfig
from bot.domain import Event, EventSink, MarginMode, PositionMode, PositionSide, Severity
from bot.errors import FatalExchangeError
from bot.exchange.port import ExchangePort

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
        self._prepared: set[str] = set()

    @property
    def leverage(self) -> int:
        return self._config.leverage

    @property
    def mode(self) -> PositionMode:
        if self._mode is None:
            raise FatalExchangeError("position mode not detected yet: call detect() first")
        return self._mode

    async def detect(self) -> PositionMode:
        """Read the account's mode; switch to the configured one when flat, else keep it."""
        actual = await self._exchange.fetch_position_mode()
        wanted = self._config.position_mode
        if wanted != "auto" and actual.value != wanted:
            target = PositionMode(wanted)
            positions = await self._exchange.fetch_positions()
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
                await self._exchange.set_position_mode(target)
                log.info("Position mode set from %s to %s", actual.value, target.value)
                actual = target
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

    async def prepare(self, perp_symbol: str) -> None:
        """Set margin mode and leverage on `perp_symbol` once per process."""
        if perp_symbol in self._prepared:
            return
        if self._mode is None:
            await self.detect()
        await self._exchange.set_margin_mode(perp_symbol, MarginMode(self._config.margin_mode))
        await self._exchange.set_leverage(perp_symbol, self._config.leverage)
        self._prepared.add(perp_symbol)
        log.info(
            "Prepared %s: %s margin, %sx",
            perp_symbol,
            self._config.margin_mode,
            self._config.leverage,
        )

    def open_short_flags(self) -> tuple[PositionSide | None, bool]:
        """Return (positionSide, reduceOnly) for selling to open or add to the short."""
        return (PositionSide.SHORT, False) if self.mode is PositionMode.HEDGE else (None, False)

    def close_short_flags(self) -> tuple[PositionSide | None, bool]:
        """Return (positionSide, reduceOnly) for buying to close the short."""
        return (PositionSide.SHORT, False) if self.mode is PositionMode.HEDGE else (None, True)
