"""Alert delivery that never blocks the trading loop.

`observe_*` are plain calls that put at most a message on a bounded queue (the oldest is
dropped and counted when it is full). Worker tasks do the rest: add the hedge's net to a
"closed" message, then one queue and worker per channel, each rate-limited
(`max_per_minute`) and retried with exponential backoff (or the channel's own retry-after).
A channel that keeps failing is logged and shown on the dashboard; the others go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import aiohttp

from bot.alerts.channels import Channel, DeliveryError, Message
from bot.alerts.config import AlertsConfig
from bot.alerts.rules import Alert, AlertKind, AlertRules
from bot.clock import Clock
from bot.domain import Event
from bot.web.live import ChannelHealth, LiveProbe

log = logging.getLogger(__name__)

RATE_WINDOW_SECONDS = 60.0
WATCH_SECONDS = 5.0

Describe = Callable[[int], Awaitable[str | None]]
StateReason = Callable[[], Awaitable[str]]


@dataclass
class _ChannelState:
    channel: Channel
    queue: asyncio.Queue[Message]
    sent_at: deque[float]
    ok: bool = True
    sent: int = 0
    failed: int = 0
    last_error: str | None = None


class AlertDispatcher:
    """Rules in, messages out, on background tasks."""

    def __init__(
        self,
        config: AlertsConfig,
        channels: list[Channel],
        clock: Clock,
        *,
        describe_hedge: Describe | None = None,
    ) -> None:
        self.config = config
        self.rules = AlertRules(outage_seconds=config.outage_seconds)
        self.clock = clock
        self.dropped = 0
        self._describe = describe_hedge
        self._intake: asyncio.Queue[Alert] = asyncio.Queue(config.queue_size)
        self._channels = [
            _ChannelState(ch, asyncio.Queue(config.queue_size), deque()) for ch in channels
        ]
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._last_state: str | None = None

    # --- intake (called from the loop: never awaits) -----------------------------------
    def observe_event(self, event: Event) -> None:
        for alert in self.rules.on_event(event):
            self._submit(alert)

    def observe_trading_state(self, state: str, reason: str) -> None:
        for alert in self.rules.on_trading_state(state, reason):
            self._submit(alert)

    def observe_health(self, name: str, healthy: bool) -> None:
        for alert in self.rules.on_health(name, healthy, self.clock.monotonic()):
            self._submit(alert)

    def _submit(self, alert: Alert) -> None:
        _put_dropping_oldest(self._intake, alert, self._count_drop)

    def _count_drop(self) -> None:
        self.dropped += 1

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Start the workers (inside the running event loop)."""
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_seconds)
        self._session = aiohttp.ClientSession(timeout=timeout)
        self._tasks.append(asyncio.create_task(self._route(), name="alerts-intake"))
        for state in self._channels:
            self._tasks.append(
                asyncio.create_task(self._deliver_all(state), name=f"alerts-{state.channel.name}")
            )

    def watch(self, probe: LiveProbe, reason: StateReason) -> None:
        """Check the bot's state, exchange and database health every few seconds."""
        self._tasks.append(asyncio.create_task(self._watch(probe, reason), name="alerts-watch"))

    async def stop(self, flush_seconds: float = 3.0) -> None:
        """Give queued messages a moment, then stop every task and close the session."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained(), timeout=flush_seconds)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _drained(self) -> None:
        await self._intake.join()
        for state in self._channels:
            await state.queue.join()

    def health(self) -> list[ChannelHealth]:
        return [
            ChannelHealth(s.channel.name, s.ok, s.sent, s.failed, s.last_error)
            for s in self._channels
        ]

    # --- workers ------------------------------------------------------------------------
    async def _route(self) -> None:
        while True:
            alert = await self._intake.get()
            try:
                text = alert.text
                if alert.key.startswith("hedge.closed") and alert.hedge_id is not None:
                    text = await self._with_net(alert.hedge_id, text)
                message = Message(alert.key, alert.kind.value, text, self.clock.now().isoformat())
                for state in self._channels:
                    _put_dropping_oldest(state.queue, message, self._count_drop)
            finally:
                self._intake.task_done()

    async def _with_net(self, hedge_id: int, text: str) -> str:
        if self._describe is None:
            return text
        try:
            extra = await self._describe(hedge_id)
        except Exception:
            log.warning("Could not add the net P&L to the alert of hedge %d", hedge_id)
            return text
        return f"{text} ({extra})" if extra else text

    async def _deliver_all(self, state: _ChannelState) -> None:
        while True:
            message = await state.queue.get()
            try:
                await self._pace(state)
                await self._deliver(state, message)
            finally:
                state.queue.task_done()

    async def _pace(self, state: _ChannelState) -> None:
        """At most `max_per_minute` messages per channel in any 60 s."""
        now = self.clock.monotonic()
        while state.sent_at and now - state.sent_at[0] >= RATE_WINDOW_SECONDS:
            state.sent_at.popleft()
        if len(state.sent_at) >= self.config.max_per_minute:
            await self.clock.sleep(RATE_WINDOW_SECONDS - (now - state.sent_at[0]))
            state.sent_at.popleft()
        state.sent_at.append(self.clock.monotonic())

    async def _deliver(self, state: _ChannelState, message: Message) -> None:
        assert self._session is not None
        attempts = self.config.retry_attempts
        for attempt in range(attempts):
            try:
                await state.channel.send(self._session, message)
            except DeliveryError as exc:
                state.last_error = str(exc)
                if attempt + 1 < attempts:
                    delay = exc.retry_after or self.config.retry_backoff_seconds * 2**attempt
                    await self.clock.sleep(delay)
                continue
            state.ok = True
            state.sent += 1
            return
        state.ok = False
        state.failed += 1
        log.warning(
            "Alert channel %s failed %d times (%s); alert %s not delivered",
            state.channel.name,
            attempts,
            state.last_error,
            message.key,
        )

    async def _watch(self, probe: LiveProbe, reason: StateReason) -> None:
        while True:
            try:
                facts = probe.facts()
                if facts.trading_state != self._last_state:
                    self._last_state = facts.trading_state
                    self.observe_trading_state(facts.trading_state, await reason())
                self.observe_health("exchange", facts.poll_failures == 0)
                self.observe_health("database", facts.database_up)
            except Exception:
                log.exception("Alert watch failed; it runs again in %.0fs", WATCH_SECONDS)
            await self.clock.sleep(WATCH_SECONDS)


T = TypeVar("T")


def _put_dropping_oldest(queue: asyncio.Queue[T], item: T, on_drop: Callable[[], None]) -> None:
    while True:
        try:
            queue.put_nowait(item)
            return
        except asyncio.QueueFull:
            with contextlib.suppress(asyncio.QueueEmpty, ValueError):
                queue.get_nowait()
                queue.task_done()
                on_drop()


__all__ = ["AlertDispatcher", "AlertKind"]
