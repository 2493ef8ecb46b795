"""Account snapshots: balances, positions and equity recorded; the day's start tracked.

A snapshot with a held asset unpriced is deferred (nothing written, nothing used) and taken
again after the next poll that prices it. Across venues, a venue whose balance cannot carry
a configured hedge is alerted on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC
from decimal import Decimal

from bot.capital import CapitalWatch, capital_shortfalls
from bot.domain import Balance, FuturesAccount
from bot.domain.ledger import BalanceSnapshot, PositionSnapshot
from bot.equity import equity_snapshot
from bot.errors import ExchangeError
from bot.exchange.port import coinm_of
from bot.exchange.venues import USDT_TERMS, VenueRouter, wallet_names
from bot.trading.context import LoopContext

log = logging.getLogger(__name__)


class AccountSnapshots:
    """Take and record the account's balances, positions and equity."""

    def __init__(self, ctx: LoopContext) -> None:
        self._ctx = ctx
        self._capital: CapitalWatch | None = None
        self._asset_price: dict[str, Decimal] = {}

    async def take(self) -> Decimal | None:
        """Record balances, positions and equity; track the day's starting equity.

        Returns the equity, or None when nothing was recorded (fetch failed, deferred).
        """
        ctx, state = self._ctx, self._ctx.state
        if ctx.circuit.open:
            state.snapshot_deferred = True  # taken after the poll that closes it
            return None
        try:
            spot = await ctx.exchange.fetch_spot_balances()
            futures = await ctx.exchange.fetch_futures_account()
            positions = await ctx.exchange.fetch_positions()
            coinm = await self._coinm_wallets()
        except ExchangeError as exc:
            ctx.exchange_failed(exc)
            log.warning("Balances not fetched now: %s", exc)
            return None
        now = ctx.clock.now()
        await self._watch_capital(spot, futures)
        prices, priceable = self._asset_prices()
        taken = equity_snapshot(
            now,
            spot,
            futures,
            prices,
            priceable,
            wallets=wallet_names(ctx.exchange),
            coinm=coinm,
        )
        if not taken.complete:
            if not state.snapshot_deferred:
                log.info(
                    "Balance snapshot deferred: no fresh price yet for %s (an unpriced "
                    "asset is not a loss); retried after the next poll",
                    ", ".join(taken.missing),
                )
            state.snapshot_deferred = True
            return None
        if state.snapshot_deferred:
            log.info("Deferred balance snapshot taken: equity %.2f USDT", taken.equity)
        state.snapshot_deferred = False
        position_rows = [
            PositionSnapshot(
                now,
                p.symbol,
                p.position_side,
                p.size,
                p.is_short,
                p.entry_price,
                p.mark_price,
                p.liquidation_price,
                p.unrealized_pnl,
                p.margin_ratio,
                p.leverage,
            )
            for p in positions
        ]
        await ctx.guard.write(
            "balance snapshot", lambda: self._write_snapshot(taken.rows, position_rows)
        )
        start = None
        if state.daily.needs_day_start(now) and ctx.guard.healthy:
            day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            start = await ctx.ledger.snapshots.first_value_since("total", day)
        state.daily.snapshot(taken.equity, now, start)
        return taken.equity

    async def _coinm_wallets(self) -> dict[str, FuturesAccount]:
        """The COIN-M wallets of every coin with a COIN-M contract in the pairs (and of the
        coins COIN-M hedges hold): always the same wallets, so that a coin already in the
        COIN-M wallet is not counted only while a hedge holds that coin. No COIN-M: none."""
        side = coinm_of(self._ctx.exchange)
        if side is None:
            return {}
        coins = {p.base for p in self._ctx.pairs.values() if p.perp.is_inverse}
        coins |= {
            h.pair.split("/")[0] for h in await self._ctx.ledger.hedges.active() if h.is_coinm
        }
        return {coin: await side.fetch_coinm_account(coin) for coin in sorted(coins)}

    async def _watch_capital(self, spot: Mapping[str, Balance], futures: FuturesAccount) -> None:
        """Across venues, alert when one venue's balance cannot carry a configured hedge."""
        ctx = self._ctx
        if not isinstance(ctx.exchange, VenueRouter):
            return
        if self._capital is None:
            self._capital = CapitalWatch(ctx.events, ctx.clock)
        spot_venue, futures_venue = ctx.exchange.leg_venues
        shortfalls = capital_shortfalls(
            ctx.config, spot_venue=spot_venue, futures_venue=futures_venue, spot=spot,
            futures=futures, spot_quotes={p.spot.quote for p in ctx.pairs.values()},
            usd_per_usdt=ctx.exchange.usd_per_usdt,
        )  # fmt: skip
        await self._capital.observe(shortfalls)

    async def _write_snapshot(
        self, rows: list[BalanceSnapshot], positions: list[PositionSnapshot]
    ) -> None:
        await self._ctx.ledger.snapshots.record(rows, positions)

    def _asset_prices(self) -> tuple[dict[str, Decimal], set[str]]:
        """Return (fresh USDT bid per asset, assets that have a USDT market).

        Prices come from the latest snapshot only when it is fresh (`max_data_age_seconds`);
        an asset quoted before, or with a listed USDT pair, counts as priceable.
        """
        ctx = self._ctx
        snap = ctx.state.latest
        prices: dict[str, Decimal] = {}
        if snap is not None:
            age = (ctx.clock.now() - snap.taken_at).total_seconds()
            for pair in snap.pairs:
                quote = snap.spot_quotes.get(pair.spot.symbol)
                # a VenueRouter shows USD-quoted spot in USDT terms, so those price too
                if quote is not None and pair.spot.quote in USDT_TERMS:
                    self._asset_price[pair.base] = quote.bid
                    if age <= ctx.config.risk.max_data_age_seconds:
                        prices[pair.base] = quote.bid
        priceable = set(self._asset_price) | {
            p.base for p in ctx.pairs.values() if p.spot.quote in USDT_TERMS
        }
        rate = getattr(ctx.exchange, "usd_per_usdt", None)
        if isinstance(rate, Decimal) and rate > 0:
            prices["USD"] = self._asset_price["USD"] = 1 / rate
            priceable.add("USD")
        return prices, priceable
