"""Public endpoints of the fake Binance: exchangeInfo, time, tickers, depth, funding, klines."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from bot.domain import Instrument, MarketKind
from tests.fakes import wire
from tests.fakes.auth import BinanceError
from tests.fakes.market import Kline, best, mid

if TYPE_CHECKING:
    from tests.fakes.binance_server import FakeBinance

Params = Mapping[str, str]
Handler = Callable[["FakeBinance", Params], Any]

INVALID_SYMBOL = BinanceError(-1121, "Invalid symbol.")


def instrument(
    fake: FakeBinance, params: Params, futures: bool, *, coinm: bool = False
) -> Instrument:
    """Return the instrument named by the `symbol` parameter, or raise -1102 / -1121.

    A COIN-M symbol is only found on dapi paths (`coinm`), a USDⓈ-M one only on fapi."""
    raw = params.get("symbol")
    if not raw:
        raise BinanceError(
            -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
        )
    inst = fake.market.find(futures, raw)
    if inst is None or (futures and inst.is_inverse != coinm):
        raise INVALID_SYMBOL
    return inst


def _symbols_param(fake: FakeBinance, params: Params, futures: bool) -> list[Instrument] | None:
    """Return the instruments of `symbol`/`symbols`, or None when neither was sent."""
    if "symbol" in params:
        return [instrument(fake, params, futures)]
    if "symbols" in params:
        try:
            ids = json.loads(params["symbols"])
        except ValueError:
            raise BinanceError(-1100, "Illegal characters found in parameter 'symbols'.") from None
        found = [fake.market.find(futures, str(i)) for i in ids]
        if any(f is None for f in found):
            raise INVALID_SYMBOL
        return [f for f in found if f is not None]
    return None


def _one_or_all(rows: list[dict[str, Any]], params: Params) -> Any:
    return rows[0] if "symbol" in params else rows


def time_(fake: FakeBinance, params: Params) -> Any:
    return {"serverTime": fake.server_ms()}


def ping(fake: FakeBinance, params: Params) -> Any:
    return {}


def _exchange_info(fake: FakeBinance, params: Params, futures: bool) -> dict[str, Any]:
    insts = _symbols_param(fake, params, futures) or fake.market.of_market(futures)
    if futures:
        return {
            "timezone": "UTC",
            "serverTime": fake.server_ms(),
            "futuresType": "U_MARGINED",
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": fake.limits.futures_weight,
                },
                {
                    "rateLimitType": "ORDERS",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": fake.limits.futures_orders_1m,
                },
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
            ],
            "exchangeFilters": [],
            "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
            "symbols": [wire.futures_symbol(i) for i in insts],
        }
    return {
        "timezone": "UTC",
        "serverTime": fake.server_ms(),
        "rateLimits": [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": fake.limits.spot_weight,
            },
            {
                "rateLimitType": "ORDERS",
                "interval": "SECOND",
                "intervalNum": 10,
                "limit": fake.limits.spot_orders_10s,
            },
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
            {
                "rateLimitType": "RAW_REQUESTS",
                "interval": "MINUTE",
                "intervalNum": 5,
                "limit": 61000,
            },
        ],
        "exchangeFilters": [],
        "symbols": [wire.spot_symbol(i) for i in insts],
    }


def _coinm_exchange_info(fake: FakeBinance, params: Params) -> dict[str, Any]:
    info = _exchange_info(fake, params, True)
    info.pop("futuresType", None)
    info["symbols"] = [wire.coinm_symbol(i) for i in fake.market.of_coinm()]
    return info


def _book_ticker(fake: FakeBinance, params: Params, futures: bool, *, coinm: bool = False) -> Any:
    insts = _symbols_param(fake, params, futures) or (
        fake.market.of_coinm() if coinm else fake.market.of_market(futures)
    )
    rows: list[dict[str, Any]] = []
    now = fake.data_ms()
    for inst in insts:
        book = fake.market.books.get(inst.symbol)
        top = best(book) if book is not None else None
        if top is None:
            continue
        row: dict[str, Any] = {
            "symbol": inst.exchange_symbol,
            "bidPrice": wire.num(top[0]),
            "bidQty": wire.num(top[1]),
            "askPrice": wire.num(top[2]),
            "askQty": wire.num(top[3]),
        }
        if futures:
            row["time"] = now
            row["lastUpdateId"] = fake.next_update_id()
        if coinm:
            row["pair"] = f"{inst.base}{inst.quote}"
        rows.append(row)
    if "symbol" in params and not rows:
        raise INVALID_SYMBOL
    return _one_or_all(fake.patch_rows("bookTicker", futures, rows), params)


def _ticker_24hr(fake: FakeBinance, params: Params, futures: bool) -> Any:
    insts = _symbols_param(fake, params, futures) or fake.market.of_market(futures)
    now = fake.data_ms()
    rows: list[dict[str, Any]] = []
    for inst in insts:
        book = fake.market.books.get(inst.symbol)
        last = mid(book)
        if last is None:
            continue
        qv = fake.market.volumes.get(inst.symbol, Decimal("100000000"))
        row: dict[str, Any] = {
            "symbol": inst.exchange_symbol,
            "priceChange": "0",
            "priceChangePercent": "0",
            "weightedAvgPrice": wire.num(last),
            "lastPrice": wire.num(last),
            "lastQty": "1",
            "openPrice": wire.num(last),
            "highPrice": wire.num(last),
            "lowPrice": wire.num(last),
            "volume": wire.num((qv / last).quantize(Decimal("0.001"))),
            "quoteVolume": wire.num(qv),
            "openTime": now - 86_400_000,
            "closeTime": now,
            "firstId": 1,
            "lastId": 1000,
            "count": 1000,
        }
        if not futures:
            top = best(book) if book is not None else None
            assert top is not None
            row.update(
                prevClosePrice=wire.num(last),
                bidPrice=wire.num(top[0]),
                bidQty=wire.num(top[1]),
                askPrice=wire.num(top[2]),
                askQty=wire.num(top[3]),
            )
        rows.append(row)
    return _one_or_all(fake.patch_rows("24hr", futures, rows), params)


def _depth(fake: FakeBinance, params: Params, futures: bool) -> Any:
    inst = instrument(fake, params, futures)
    limit = int(params.get("limit", "500" if futures else "100"))
    if futures and limit not in (5, 10, 20, 50, 100, 500, 1000):
        raise BinanceError(-1100, "Illegal characters found in parameter 'limit'.")
    if not 1 <= limit <= 5000:
        raise BinanceError(-1100, "Illegal characters found in parameter 'limit'.")
    book = fake.market.books.get(inst.symbol)
    bids = book.bids[:limit] if book else ()
    asks = book.asks[:limit] if book else ()
    data: dict[str, Any] = {
        "lastUpdateId": fake.next_update_id(),
        "bids": [[wire.num(p), wire.num(q)] for p, q in bids],
        "asks": [[wire.num(p), wire.num(q)] for p, q in asks],
    }
    if futures:
        data["E"] = data["T"] = fake.data_ms()
    return data


def premium_index(fake: FakeBinance, params: Params, *, coinm: bool = False) -> Any:
    """fapi's premiumIndex, or dapi's (`coinm`: COIN-M contracts, with their `pair`)."""
    if coinm:
        insts = [instrument(fake, params, True, coinm=True)] if "symbol" in params else []
        insts = insts or fake.market.of_coinm()
    else:
        insts = _symbols_param(fake, params, True) or fake.market.of_market(True)
    now = fake.data_ms()
    rows: list[dict[str, Any]] = []
    for inst in insts:
        state = fake.market.funding.get(inst.symbol)
        if inst.kind is MarketKind.PERPETUAL and state is not None:
            rows.append(
                {
                    "symbol": inst.exchange_symbol,
                    "markPrice": wire.num(state.mark),
                    "indexPrice": wire.num(state.index),
                    "estimatedSettlePrice": wire.num(state.index),
                    "lastFundingRate": wire.num(state.rate),
                    "interestRate": wire.num(state.interest),
                    "nextFundingTime": wire.ms(state.next_funding_time),
                    "time": now,
                }
            )
        elif inst.kind is MarketKind.DATED_FUTURE:
            px = mid(fake.market.books.get(inst.symbol)) or Decimal("1")
            rows.append(
                {
                    "symbol": inst.exchange_symbol,
                    "markPrice": wire.num(px),
                    "indexPrice": wire.num(px),
                    "estimatedSettlePrice": wire.num(px),
                    "lastFundingRate": "",
                    "interestRate": "",
                    "nextFundingTime": 0,
                    "time": now,
                }
            )
    if "symbol" in params and not rows:
        raise INVALID_SYMBOL
    return _one_or_all(fake.patch_rows("premiumIndex", True, rows), params)


def funding_info(fake: FakeBinance, params: Params) -> Any:
    rows = []
    for symbol, state in fake.market.funding.items():
        inst = fake.market.instruments.get(symbol)
        if inst is None or not state.adjusted:
            continue
        rows.append(
            {
                "symbol": inst.exchange_symbol,
                "adjustedFundingRateCap": wire.num(
                    state.cap if state.cap is not None else Decimal("0.02")
                ),
                "adjustedFundingRateFloor": wire.num(
                    state.floor if state.floor is not None else Decimal("-0.02")
                ),
                "fundingIntervalHours": state.interval_hours,
                "disclaimer": False,
            }
        )
    return fake.patch_rows("fundingInfo", True, rows)


def _window(
    params: Params, default_limit: int, max_limit: int
) -> tuple[int | None, int | None, int]:
    start = int(params["startTime"]) if "startTime" in params else None
    end = int(params["endTime"]) if "endTime" in params else None
    limit = min(int(params.get("limit", str(default_limit))), max_limit)
    if limit < 1:
        raise BinanceError(-1100, "Illegal characters found in parameter 'limit'.")
    return start, end, limit


def _select(times: list[int], start: int | None, end: int | None, limit: int) -> list[int]:
    """Binance paging: from `start` ascending, else the most recent `limit` before `end`."""
    idx = [
        i
        for i, t in enumerate(times)
        if (start is None or t >= start) and (end is None or t <= end)
    ]
    return idx[:limit] if start is not None else idx[-limit:]


def funding_rate(fake: FakeBinance, params: Params, *, coinm: bool = False) -> Any:
    """GET /fapi/v1/fundingRate (or /dapi/v1/fundingRate with `coinm`: BTCUSD_PERP)."""
    start, end, limit = _window(params, 100, 1000)
    if "symbol" in params:
        insts = [instrument(fake, params, True, coinm=coinm)]
    else:
        listed = fake.market.of_coinm() if coinm else fake.market.of_market(True)
        insts = [i for i in listed if i.kind is MarketKind.PERPETUAL]
    rows: list[tuple[int, dict[str, Any]]] = []
    for inst in insts:
        for r in fake.market.funding_history.get(inst.symbol, []):
            rows.append(
                (
                    wire.ms(r.funding_time),
                    {
                        "symbol": inst.exchange_symbol,
                        "fundingTime": wire.ms(r.funding_time),
                        "fundingRate": wire.num(r.rate),
                        "markPrice": wire.num(r.mark_price) if r.mark_price is not None else "",
                    },
                )
            )
    rows.sort(key=lambda x: x[0])
    chosen = _select([t for t, _ in rows], start, end, limit)
    return [rows[i][1] for i in chosen]


_INTERVALS = {
    "1m",
    "3m",
    "5m",
    "15m",
    "30m",
    "1h",
    "2h",
    "4h",
    "6h",
    "8h",
    "12h",
    "1d",
    "3d",
    "1w",
    "1M",
}


def _continuous_klines(fake: FakeBinance, params: Params) -> Any:
    """GET /fapi/v1/continuousKlines?pair=BTCUSDT&contractType=CURRENT_QUARTER&interval=1h."""
    pair, contract = params.get("pair", ""), params.get("contractType", "")
    if contract not in ("PERPETUAL", "CURRENT_QUARTER", "NEXT_QUARTER"):
        raise BinanceError(-1121, "Invalid contractType.")
    if not any(i.base + i.quote == pair for i in fake.market.of_market(True)):
        raise BinanceError(-1121, "Invalid pair.")
    return _klines(fake, params, True, contract, key=pair)


def _coinm_continuous_klines(fake: FakeBinance, params: Params) -> Any:
    """GET /dapi/v1/continuousKlines?pair=BTCUSD&contractType=CURRENT_QUARTER&interval=1h.

    Seeded like USDⓈ-M's (`add_klines("BTCUSD", ...)`): [5] is the volume in contracts
    (the Kline's volume), [7] the base asset volume (the Kline's quote_volume field)."""
    pair, contract = params.get("pair", ""), params.get("contractType", "")
    if contract not in ("PERPETUAL", "CURRENT_QUARTER", "NEXT_QUARTER"):
        raise BinanceError(-1121, "Invalid contractType.")
    if not any(i.base + i.quote == pair for i in fake.market.of_coinm()):
        raise BinanceError(-1121, "Invalid pair.")
    return _klines(fake, params, True, contract, key=pair)


def _klines(
    fake: FakeBinance, params: Params, futures: bool, price: str, *, key: str | None = None
) -> Any:
    """Klines of `symbol` (or of `key`: a pair's continuous contract) at `price`."""
    symbol = key if key is not None else instrument(fake, params, futures).symbol
    interval = params.get("interval", "")
    if interval not in _INTERVALS:
        raise BinanceError(-1120, "Invalid interval.")
    start, end, limit = _window(params, 500, 1500 if futures else 1000)
    rows: list[Kline] = fake.market.klines.get((symbol, price, interval), [])
    chosen = _select([wire.ms(k.open_time) for k in rows], start, end, limit)
    step = _interval_ms(interval)
    out = []
    for i in chosen:
        k = rows[i]
        t = wire.ms(k.open_time)
        mark = price == "mark"
        out.append(
            [
                t,
                wire.num(k.open),
                wire.num(k.high),
                wire.num(k.low),
                wire.num(k.close),
                "0" if mark else wire.num(k.volume),
                t + step - 1,
                "0" if mark else wire.num(k.quote_volume),
                0 if mark else 100,
                "0",
                "0",
                "0",
            ]
        )
    return out


def _interval_ms(interval: str) -> int:
    unit = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000, "M": 2_592_000_000}
    return int(interval[:-1]) * unit[interval[-1]]


def delivery_price(fake: FakeBinance, params: Params) -> Any:
    """GET /futures/data/delivery-price?pair=BTCUSDT: the pair's deliveries, oldest first."""
    pair = params.get("pair")
    if not pair:
        raise BinanceError(-1102, "Mandatory parameter 'pair' was not sent, was empty/null.")
    rows = sorted(
        (at, price) for (p, at), price in fake.market.delivery_prices.items() if p == pair
    )
    return [{"deliveryTime": at, "deliveryPrice": float(price)} for at, price in rows]


ROUTES: dict[tuple[str, str], Handler] = {
    ("GET", "/api/v3/ping"): ping,
    ("GET", "/api/v3/time"): time_,
    ("GET", "/api/v3/exchangeInfo"): lambda f, p: _exchange_info(f, p, False),
    ("GET", "/api/v3/ticker/bookTicker"): lambda f, p: _book_ticker(f, p, False),
    ("GET", "/api/v3/ticker/24hr"): lambda f, p: _ticker_24hr(f, p, False),
    ("GET", "/api/v3/depth"): lambda f, p: _depth(f, p, False),
    ("GET", "/api/v3/klines"): lambda f, p: _klines(f, p, False, "last"),
    ("GET", "/fapi/v1/ping"): ping,
    ("GET", "/fapi/v1/time"): time_,
    ("GET", "/fapi/v1/exchangeInfo"): lambda f, p: _exchange_info(f, p, True),
    ("GET", "/fapi/v1/ticker/bookTicker"): lambda f, p: _book_ticker(f, p, True),
    ("GET", "/fapi/v1/ticker/24hr"): lambda f, p: _ticker_24hr(f, p, True),
    ("GET", "/fapi/v1/depth"): lambda f, p: _depth(f, p, True),
    ("GET", "/fapi/v1/premiumIndex"): premium_index,
    ("GET", "/fapi/v1/fundingRate"): funding_rate,
    ("GET", "/fapi/v1/fundingInfo"): funding_info,
    ("GET", "/fapi/v1/klines"): lambda f, p: _klines(f, p, True, "last"),
    ("GET", "/fapi/v1/markPriceKlines"): lambda f, p: _klines(f, p, True, "mark"),
    ("GET", "/fapi/v1/continuousKlines"): _continuous_klines,
    ("GET", "/futures/data/delivery-price"): delivery_price,
    ("GET", "/dapi/v1/ping"): ping,
    ("GET", "/dapi/v1/time"): time_,
    ("GET", "/dapi/v1/exchangeInfo"): _coinm_exchange_info,
    ("GET", "/dapi/v1/premiumIndex"): lambda f, p: premium_index(f, p, coinm=True),
    ("GET", "/dapi/v1/fundingRate"): lambda f, p: funding_rate(f, p, coinm=True),
    ("GET", "/dapi/v1/ticker/bookTicker"): lambda f, p: _book_ticker(f, p, True, coinm=True),
    ("GET", "/dapi/v1/depth"): lambda f, p: _depth(f, p, True),
    ("GET", "/dapi/v1/continuousKlines"): _coinm_continuous_klines,
}
