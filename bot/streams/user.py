"""User-data streams: spot, USDⓈ-M and COIN-M order and fill events, by client order id.

- Spot: the WebSocket API subscription `userDataStream.subscribe.signature` (Binance
  retired spot listenKeys in February 2026), through ccxt.pro's `watch_orders`.
- USDⓈ-M: a listenKey stream. ccxt.pro creates the key; carrybot keeps it alive itself
  every `listen_key_keepalive_minutes` (ccxt 4.5 schedules one keep-alive only) and, on
  `listenKeyExpired` or a keep-alive the exchange refuses, has ccxt create a new key and
  reconnects.
- COIN-M (with `"coinm"` traded): dapi's own listenKey stream through ccxt.pro's
  `binancecoinm` (`bot.streams.coinm_user`), kept alive and renewed the same way; its
  `ORDER_TRADE_UPDATE` (contracts, fees in the coin) feeds the same order book-keeping, its
  `ACCOUNT_UPDATE` the coin wallets.

`final_order(client_order_id)` gives an order's final state as the stream reported it
(fills accumulated, fee summed per trade id). Only final states are served from here: a
REST look-up by client order id stays the answer for anything else, and after any gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from bot.clock import Clock, utc_from_ms
from bot.domain import Instrument, Order, OrderStatus, OrderType, PositionSide, Side
from bot.streams.coinm_user import CoinmAccountView, parse_coinm_account_update
from bot.streams.config import StreamsConfig
from bot.streams.health import HealthBoard, StreamState
from bot.streams.pro_client import CarryBinancePro, redact_listen_key
from bot.streams.supervisor import Subscription, Supervisor
from bot.streams.wire import BadFrame

log = logging.getLogger(__name__)

SPOT_USER = "user-spot"
FUTURES_USER = "user-futures"
COINM_USER = "user-coinm"
_SERVER_NOTICES = {"listenKeyExpired", "eventStreamTerminated", "serverShutdown"}
_STATUS = {
    "NEW": OrderStatus.NEW,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,
    "REJECTED": OrderStatus.REJECTED,
}


@dataclass
class _Tracked:
    order: Order
    trades: set[str] = field(default_factory=set)
    fee: Decimal = Decimal(0)
    fee_assets: set[str] = field(default_factory=set)


def parse_order_event(
    message: Any, by_id: Mapping[tuple[bool, str], Instrument]
) -> tuple[Order, str | None, Decimal, str | None] | None:
    """Return (order, trade id, this trade's fee, fee asset) of an order event, else None.

    Raises BadFrame naming the field when an order event is malformed.
    """
    if not isinstance(message, dict):
        return None
    if isinstance(message.get("event"), dict):
        message = message["event"]
    event = message.get("e")
    if event == "ORDER_TRADE_UPDATE" and isinstance(message.get("o"), dict):
        o, futures = message["o"], True
    elif event == "executionReport":
        o, futures = message, False
    else:
        return None
    inst = by_id.get((futures, str(o.get("s"))))
    if inst is None:
        return None
    try:
        filled = _num(o, "z")
        if futures:
            average = _num(o, "ap")
        else:
            quote = _num(o, "Z", "0")
            average = quote / filled if filled > 0 else Decimal(0)
        order = Order(
            symbol=inst.symbol,
            client_order_id=str(o["c"]),
            exchange_order_id=str(o["i"]),
            side=Side(str(o["S"]).lower()),
            type=OrderType(str(o["o"]).lower()),
            status=_STATUS.get(str(o["X"]), OrderStatus.UNKNOWN),
            quantity=_num(o, "q"),
            filled=filled,
            average_price=average if average > 0 else None,
            price=price if (price := _num(o, "p")) > 0 else None,
            created_at=None,
            updated_at=utc_from_ms(int(o.get("T") or message.get("E"))),
            reduce_only=bool(o.get("R")) if futures else False,
            position_side=PositionSide(str(o["ps"])) if futures and o.get("ps") else None,
        )
        trade = str(o["t"]) if o.get("x") == "TRADE" else None
        fee = _num(o, "n", "0") if trade else Decimal(0)
    except BadFrame as exc:
        raise BadFrame(f"{event} {exc}") from None
    except (KeyError, ValueError, InvalidOperation, TypeError) as exc:
        raise BadFrame(f"{event} {o.get('s')} {o.get('c')}: bad field ({exc!r})") from None
    return order, trade, fee, (str(o["N"]) if trade and o.get("N") else None)


def _num(o: Mapping[str, Any], key: str, default: str | None = None) -> Decimal:
    """A finite decimal field of an order event; BadFrame naming `key` otherwise."""
    raw = o.get(key)
    if default is not None and not raw:
        raw = default
    try:
        value = Decimal(str(raw))
    except (InvalidOperation, ValueError):
        value = Decimal("NaN")
    if raw is None or not value.is_finite():
        raise BadFrame(f"{o.get('s')} {o.get('c')}: field `{key}` = {raw!r} is not a number")
    return value


class UserStreams:
    """Order events of both markets, by client order id."""

    def __init__(
        self,
        client: CarryBinancePro,
        config: StreamsConfig,
        clock: Clock,
        health: HealthBoard,
        instruments: Mapping[str, Instrument],
        *,
        spot: bool = True,
        coinm_client: CarryBinancePro | None = None,
    ) -> None:
        self.client = client
        self.coinm_client = coinm_client  # a keyed `binancecoinm`: the dapi listenKey stream
        self._spot = spot  # False across venues: no spot account on Binance
        self.config = config
        self._clock = clock
        self.health = health
        self._by_id = {(i.is_derivative, i.exchange_symbol): i for i in instruments.values()}
        self._inverse = {s for s, i in instruments.items() if i.is_inverse}
        self.coinm = CoinmAccountView()  # the COIN-M wallets and positions the stream reported
        self._orders: dict[str, _Tracked] = {}
        self._waiters: dict[str, list[asyncio.Future[Order]]] = {}
        self.supervisors: list[Supervisor] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.keepalives = 0
        self.coinm_keepalives = 0
        self.renewals = 0
        self.events = 0
        # Called after a user stream reconnects: events of the gap are not replayed, so the
        # bot checks its orders in flight by client order id (the reconciler).
        self.on_resync: Callable[[], None] | None = None
        client.tap = self._tap
        if coinm_client is not None:
            coinm_client.tap = self._coinm_tap

    def start(self) -> None:
        """Subscribe both user-data streams and start the listenKey keep-alive."""
        ws_api = self.client.urls["api"]["ws"]["ws-api"]["spot"]
        subs = [
            Subscription(
                SPOT_USER,
                "ws-api",
                [ws_api],
                lambda: self.client.watch_orders(None, None, None, {"type": "spot"}),
                "ws-api",
                live_when_connected=True,
            ),
            Subscription(
                FUTURES_USER,
                "linear",
                self.config.futures_endpoints(),
                lambda: self.client.watch_orders(
                    None, None, None, {"type": "swap", "subType": "linear"}
                ),
                "listenKey=",
                live_when_connected=True,
            ),
        ]
        if not self._spot:
            subs = subs[1:]
        clients = [self.client] * len(subs)
        if self.coinm_client is not None:
            coinm = self.coinm_client
            subs.append(
                Subscription(
                    COINM_USER,
                    "inverse",
                    self.config.coinm_endpoints(),
                    # One watch drives the connection; every frame on it (orders, trades,
                    # ACCOUNT_UPDATE) reaches the tap, so watchBalance / watchPositions would
                    # only add ccxt's REST snapshots of what the bot reads from the frames.
                    lambda: coinm.watch_orders(
                        None, None, None, {"type": "future", "subType": "inverse"}
                    ),
                    "inverse",  # ccxt's subscription key of the dapi listenKey connection
                    live_when_connected=True,
                )
            )
            clients.append(coinm)
        for client, sub in zip(clients, subs, strict=True):
            sup = Supervisor(
                client,
                sub,
                self.health.add(sub.name),
                self._clock,
                max_backoff_seconds=self.config.reconnect_max_backoff_seconds,
                on_live=self._live,
            )
            self.supervisors.append(sup)
            self._tasks.append(asyncio.create_task(sup.run(), name=f"stream-{sub.name}"))
        self._tasks.append(asyncio.create_task(self._keep_alive(), name="listen-key-keepalive"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        with contextlib.suppress(Exception):
            await self.client.close_ws_clients()
        if self.coinm_client is not None:
            with contextlib.suppress(Exception):
                await self.coinm_client.close_ws_clients()

    def _live(self, sup: Supervisor) -> None:
        if sup.health.reconnects > 0 and self.on_resync is not None:
            log.info("User stream %s back: checking orders in flight by REST", sup.sub.name)
            self.on_resync()

    def live(self, name: str) -> bool:
        sup = self._supervisor(name)
        return sup is not None and sup.health.state is StreamState.LIVE

    def stream_for(self, symbol: str) -> str:
        """The user stream that reports orders of `symbol`."""
        if symbol in self._inverse:
            return COINM_USER
        return FUTURES_USER if ":" in symbol else SPOT_USER

    def final_order(self, client_order_id: str) -> Order | None:
        """The order's final state from the stream (fee summed over its trades), or None."""
        tracked = self._orders.get(client_order_id)
        if tracked is None or not tracked.order.status.is_final:
            return None
        order = tracked.order
        if tracked.trades:
            asset = next(iter(tracked.fee_assets)) if len(tracked.fee_assets) == 1 else None
            order = _with_fee(order, tracked.fee, asset)
        return order

    async def wait_final(self, client_order_id: str) -> Order:
        """Wait until the stream reports the order's final state."""
        known = self.final_order(client_order_id)
        if known is not None:
            return known
        waiter: asyncio.Future[Order] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(client_order_id, []).append(waiter)
        try:
            return await waiter
        finally:
            waiters = self._waiters.get(client_order_id, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._waiters.pop(client_order_id, None)

    # --- frames -------------------------------------------------------------------------
    def _tap(self, url: str, message: Any) -> bool:
        sup = next((s for s in self.supervisors if s.sub.probe in url), None)
        return self._on_frame(sup, url, message, coinm=False)

    def _coinm_tap(self, url: str, message: Any) -> bool:
        return self._on_frame(self._supervisor(COINM_USER), url, message, coinm=True)

    def _on_frame(self, sup: Supervisor | None, url: str, message: Any, *, coinm: bool) -> bool:
        """Read one frame; False when it is malformed (logged, ccxt does not see it)."""
        if sup is not None:
            sup.health.messages += 1
            sup.health.last_message_at = self._clock.monotonic()
        event = message.get("event", message) if isinstance(message, dict) else None
        kind = event.get("e") if isinstance(event, dict) else None
        if kind in _SERVER_NOTICES:
            if kind == "listenKeyExpired":
                self._forget_listen_key(coinm=coinm)
            if sup is not None:
                asyncio.get_running_loop().call_soon(sup.drop, f"server sent {kind}")
            return True
        try:
            parsed = parse_order_event(message, self._by_id)
            if coinm and kind == "ACCOUNT_UPDATE":
                self.coinm.apply(parse_coinm_account_update(message))
        except BadFrame as exc:
            if sup is not None:
                sup.health.bad_messages += 1
            log.warning("Bad user-data event from %s ignored: %s", redact_listen_key(url), exc)
            return False
        if parsed is None:
            return True
        order, trade, fee, asset = parsed
        self.events += 1
        tracked = self._orders.get(order.client_order_id)
        if tracked is None:
            tracked = self._orders[order.client_order_id] = _Tracked(order)
        elif not (tracked.order.status.is_final and not order.status.is_final):
            tracked.order = order  # events may arrive out of order: a final state stays
        if trade is not None and trade not in tracked.trades:
            tracked.trades.add(trade)
            tracked.fee += fee
            if asset:
                tracked.fee_assets.add(asset)
        final = self.final_order(order.client_order_id)
        if final is not None:
            for waiter in self._waiters.get(order.client_order_id, []):
                if not waiter.done():
                    waiter.set_result(final)
        return True

    # --- listenKey ----------------------------------------------------------------------
    async def _keep_alive(self) -> None:
        every = self.config.listen_key_keepalive_minutes * 60
        while True:
            await self._clock.sleep(every)
            if self.live(FUTURES_USER):
                await self._keep_key_alive(FUTURES_USER, coinm=False)
            if self.coinm_client is not None and self.live(COINM_USER):
                await self._keep_key_alive(COINM_USER, coinm=True)

    async def _keep_key_alive(self, name: str, *, coinm: bool) -> None:
        try:
            if coinm:
                assert self.coinm_client is not None
                await self.coinm_client.dapiPrivatePutListenKey()
                self.coinm_keepalives += 1
            else:
                await self.client.fapiPrivatePutListenKey()
                self.keepalives += 1
        except Exception as exc:
            log.warning("%s listenKey keep-alive refused (%s); renewing the key", name, exc)
            self._forget_listen_key(coinm=coinm)
            sup = self._supervisor(name)
            if sup is not None:
                sup.drop("listenKey keep-alive refused")

    def _forget_listen_key(self, *, coinm: bool = False) -> None:
        """Make ccxt create a new listenKey at the next subscription."""
        self.renewals += 1
        client = self.coinm_client if coinm else self.client
        if client is None:
            return
        for key in ("inverse",) if coinm else ("linear", "future", "swap"):
            options = client.options.get(key)
            if isinstance(options, dict):
                client.options[key] = {
                    **options,
                    "listenKey": None,
                    "lastAuthenticatedTime": 0,
                }

    def _supervisor(self, name: str) -> Supervisor | None:
        return next((s for s in self.supervisors if s.sub.name == name), None)


def _with_fee(order: Order, fee: Decimal, asset: str | None) -> Order:
    return dataclasses.replace(order, fee=fee, fee_asset=asset)
