"""The Binance COIN-M (dapi) account through ccxt: coin wallets, positions, position mode.

Orders on COIN-M contracts go through `ccxt_orders` like any other (ccxt routes a unified
inverse symbol, `BTC/USD:BTC-250328`, to `/dapi/v1/order`); leverage and margin type
through `ccxt_account` (ccxt routes those by symbol too). This module reads what ccxt's
unified calls would read with extra requests (leverage brackets) or in other shapes:

- `GET /dapi/v1/account`: one row per coin (wallet, unrealised P&L, margins, available), in
  the coin;
- `GET /dapi/v1/positionRisk`: positions in contracts, P&L in the coin;
- `GET|POST /dapi/v1/positionSide/dual`: COIN-M's position mode, set apart from USDⓈ-M's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from bot.domain import Balance, FuturesAccount, MarginMode, Position, PositionMode, PositionSide
from bot.domain.numbers import to_decimal
from bot.errors import BadResponseError, OrderRejected
from bot.exchange import ccxt_calls as calls
from bot.exchange.ccxt_calls import BinanceSession
from bot.exchange.ccxt_market_data import BinanceMarketData
from bot.exchange.translate import NO_CHANGE_POSITION_MODE

logger = logging.getLogger(__name__)
ZERO = Decimal(0)


def _dec(row: Mapping[str, Any], key: str) -> Decimal:
    return to_decimal(row.get(key, "0"), field=key)


def coinm_account(info: Mapping[str, Any], asset: str) -> FuturesAccount:
    """Return one coin's COIN-M wallet from /dapi/v1/account (zero when the coin has none)."""
    rows = info.get("assets")
    if not isinstance(rows, list):
        raise BadResponseError("dapi account: expected `assets`")
    row = next((r for r in rows if isinstance(r, dict) and r.get("asset") == asset), None)
    if row is None:
        return FuturesAccount(ZERO, ZERO, ZERO, ZERO, ZERO, ZERO, {})
    wallet, available = _dec(row, "walletBalance"), _dec(row, "availableBalance")
    free = max(ZERO, min(available, wallet))
    return FuturesAccount(
        wallet_balance=wallet,
        unrealized_pnl=_dec(row, "unrealizedProfit"),
        margin_balance=_dec(row, "marginBalance"),
        available_balance=available,
        maintenance_margin=_dec(row, "maintMargin"),
        initial_margin=_dec(row, "initialMargin"),
        assets={asset: Balance(asset, free, wallet - free)},
    )


def coinm_position(row: Mapping[str, Any], symbol: str, contract_size: Decimal) -> Position:
    """Return a Position from one /dapi/v1/positionRisk row (size in contracts)."""
    amount = _dec(row, "positionAmt")
    side = PositionSide(str(row.get("positionSide", "BOTH")))
    liquidation = _dec(row, "liquidationPrice")
    return Position(
        symbol=symbol,
        position_side=side,
        size=abs(amount),
        is_short=side is PositionSide.SHORT or (side is PositionSide.BOTH and amount < 0),
        entry_price=_dec(row, "entryPrice"),
        mark_price=_dec(row, "markPrice"),
        liquidation_price=liquidation if liquidation > 0 else None,
        unrealized_pnl=_dec(row, "unRealizedProfit"),
        leverage=int(str(row.get("leverage") or "1")),
        margin_mode=(
            MarginMode.ISOLATED
            if str(row.get("marginType", "cross")).lower() == "isolated"
            else MarginMode.CROSS
        ),
        notional=abs(amount) * contract_size,
    )


class BinanceCoinm:
    """COIN-M wallets, positions and position mode of one Binance account (keys required)."""

    def __init__(self, session: BinanceSession, markets: BinanceMarketData) -> None:
        self._s = session
        self._markets = markets

    async def fetch_coinm_account(self, asset: str) -> FuturesAccount:
        """Return the COIN-M wallet of `asset`, every figure in that coin."""
        self._s.require_keys("fetch_coinm_account")
        raw = await self._s.call(
            "COIN-M account", lambda: self._s.client.dapiPrivateGetAccount({}), signed_read=True
        )
        if not isinstance(raw, dict):
            raise BadResponseError("dapi account: expected an object")
        try:
            return coinm_account(raw, asset)
        except (ValueError, KeyError, TypeError) as exc:
            raise BadResponseError(f"dapi account: {exc}") from exc

    async def fetch_coinm_positions(self) -> Sequence[Position]:
        """Return every open COIN-M position (sizes in contracts)."""
        self._s.require_keys("fetch_coinm_positions")
        await self._markets.load_instruments()
        raw = await self._s.call(
            "COIN-M positions",
            lambda: self._s.client.dapiPrivateGetPositionRisk({}),
            signed_read=True,
        )
        out = []
        for row in calls.rows(raw, "dapi positionRisk"):
            inst = self._markets.find(True, row.get("symbol"))
            if inst is None or not inst.is_inverse:
                continue
            try:
                pos = coinm_position(row, inst.symbol, inst.contract_size)
            except (ValueError, KeyError) as exc:
                logger.error("Dropping dapi positionRisk row of %s: %s", inst.symbol, exc)
                continue
            if pos.size > 0:
                out.append(pos)
        return out

    async def fetch_coinm_position_mode(self) -> PositionMode:
        """Return COIN-M's position mode (Binance keeps it apart from USDⓈ-M's)."""
        self._s.require_keys("fetch_coinm_position_mode")
        raw = await self._s.call(
            "COIN-M position mode",
            lambda: self._s.client.dapiPrivateGetPositionSideDual({}),
            signed_read=True,
        )
        hedged = raw.get("dualSidePosition") if isinstance(raw, dict) else None
        if not isinstance(hedged, bool):
            raise BadResponseError("dapi positionSide/dual: expected dualSidePosition")
        return PositionMode.HEDGE if hedged else PositionMode.ONE_WAY

    async def set_coinm_position_mode(self, mode: PositionMode) -> None:
        """Switch COIN-M's position mode ("no need to change" is not an error)."""
        self._s.require_keys("set_coinm_position_mode")
        value = "true" if mode is PositionMode.HEDGE else "false"
        try:
            await self._s.call(
                "set COIN-M position mode",
                lambda: self._s.client.dapiPrivatePostPositionSideDual({"dualSidePosition": value}),
            )
        except OrderRejected as exc:
            if exc.code != NO_CHANGE_POSITION_MODE:
                raise
