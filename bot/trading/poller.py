"""The market poller: one market-wide snapshot, its funding times and its stored observations.

Exchange errors back off exponentially with jitter (the circuit; this job is its probe): the
stale-data guard then blocks entries, existing hedges are kept, and trading resumes by itself
when data is fresh. Observations are thinned per symbol to one per
`observation_every_seconds`, for the strategy's universe and every pair a hedge is held on.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from bot.domain import Event, MarketSnapshot, Severity
from bot.domain.funding import premium_index
from bot.domain.ledger import MarketObservation
from bot.domain.universe import select_universe
from bot.errors import ExchangeError
from bot.trading.context import LoopContext

log = logging.getLogger(__name__)


class MarketPoller:
    """Take snapshots into the shared state; store what the ledger keeps of them."""

    def __init__(self, ctx: LoopContext, snapshot: Callable[[], Awaitable[MarketSnapshot]]) -> None:
        self._ctx = ctx
        self._snapshot = snapshot

    async def poll(self) -> MarketSnapshot | None:
        """Take one market-wide snapshot; back off on exchange errors (the circuit's probe)."""
        ctx = self._ctx
        if ctx.circuit.open:
            return None
        started = ctx.clock.monotonic()
        snap = await self._poll()
        if snap is not None:
            ctx.state.poll_ms.append((ctx.clock.monotonic() - started) * 1000)
        return snap

    async def _poll(self) -> MarketSnapshot | None:
        ctx = self._ctx
        try:
            snap = await self._snapshot()
        except ExchangeError as exc:
            delay = ctx.circuit.failure()
            failures = ctx.circuit.failures
            log.warning(
                "Snapshot failed (%s); attempt %d, next try in %.1fs; no new entries "
                "on stale data, hedges kept",
                exc,
                failures,
                delay,
            )
            if failures == 3:
                await ctx.events.emit(
                    Event(
                        "exchange.outage",
                        f"market data failing: {exc}",
                        ctx.clock.now(),
                        Severity.ALERT,
                        {"error": str(exc)},
                    )
                )
            return None
        failures = ctx.circuit.success()
        if failures:
            log.info("Market data is back after %d failed attempt(s)", failures)
            await ctx.events.emit(
                Event(
                    "exchange.recovered",
                    "market data is back",
                    ctx.clock.now(),
                    Severity.INFO,
                    {"failures": failures},
                )
            )
        self._track_funding_times(snap)  # compares with the previous snapshot: before replacing it
        ctx.state.latest = snap
        # Pairs listed after start-up: hedges opened on them must be closable too.
        ctx.pairs.update((p.key, p) for p in snap.pairs if p.key not in ctx.pairs)
        ctx.pairs.update((p.perp.symbol, p) for p in snap.dated_pairs)  # keyed by future
        ctx.pairs.update((p.perp.symbol, p) for p in snap.coinm_perp_pairs)
        await self._store_observations(snap)
        return snap

    def _track_funding_times(self, snap: MarketSnapshot) -> None:
        state = self._ctx.state
        previous = state.latest
        for symbol, info in snap.funding.items():
            if symbol in state.funding_due:
                continue
            before = previous.funding.get(symbol) if previous else None
            if before is not None and info.next_funding_time > before.next_funding_time:
                state.funding_due[symbol] = before.next_funding_time

    async def _store_observations(self, snap: MarketSnapshot) -> None:
        ctx = self._ctx
        every = ctx.config.schedule.observation_every_seconds
        bucket = _floor_time(snap.taken_at, every)
        stored = ctx.state.last_observation_bucket
        # The dated futures held are observed too (status values open hedges from these).
        held = ctx.held.futures
        by_future = (*snap.dated_pairs, *snap.coinm_perp_pairs)
        observed = (*snap.pairs, *(p for p in by_future if p.perp.symbol in held))
        if all(stored.get(p.perp.symbol) == bucket for p in observed):
            return  # every pair was stored in this bucket already
        keep = self._observed_symbols()
        rows: list[MarketObservation] = []
        for pair in observed:
            perp = pair.perp.symbol
            if pair.key not in keep or stored.get(perp) == bucket:
                continue
            info = snap.funding.get(perp)
            sq, pq = snap.spot_quotes.get(pair.spot.symbol), snap.perp_quotes.get(perp)
            premium = (
                premium_index(pq.bid, pq.ask, info.index_price)
                if info is not None and pq is not None and info.index_price > 0
                else None
            )
            rows.append(
                MarketObservation(
                    symbol=perp,
                    observed_at=bucket,
                    funding_rate=info.funding_rate if info else None,
                    next_funding_time=info.next_funding_time if info else None,
                    interval_hours=info.interval_hours if info else None,
                    mark_price=info.mark_price if info else None,
                    index_price=info.index_price if info else None,
                    interest_rate=info.interest_rate if info else None,
                    premium=premium,
                    spot_bid=sq.bid if sq else None,
                    spot_ask=sq.ask if sq else None,
                    perp_bid=pq.bid if pq else None,
                    perp_ask=pq.ask if pq else None,
                )
            )
            stored[perp] = bucket
        if rows:
            await ctx.guard.write(
                f"{len(rows)} observations", lambda: ctx.ledger.observations.upsert(rows)
            )

    def _observed_symbols(self) -> set[str]:
        """The strategy's own universe plus every pair a hedge is held on."""
        snap = self._ctx.state.latest
        keep = set(self._ctx.held.pairs)
        if snap is not None:
            keep |= {p.key for p in select_universe(snap, self._ctx.config.universe)}
        return keep


def _floor_time(when: datetime, seconds: float) -> datetime:
    epoch = when.timestamp()
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=UTC)
