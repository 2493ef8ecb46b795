"""Binance's order filters for the simulator: the same checks, the same codes and messages.

Spot rejects with -1013 "Filter failure: …"; USDⓈ-M futures use their own codes (-1111
precision, -4003/-4004/-4005 quantity, -4014/-4023 tick/step, -4164 notional).
"""

from __future__ import annotations

import re
from decimal import Decimal

from bot.domain import Instrument, OrderRequest, OrderType
from bot.domain.numbers import is_multiple
from bot.errors import OrderRejected

CLIENT_ID_PATTERN = r"^[\.A-Z\:/a-z0-9_-]{1,36}$"
_CLIENT_ID = re.compile(CLIENT_ID_PATTERN)


def reject(code: int, reason: str) -> OrderRejected:
    """Build the rejection Binance would answer with."""
    return OrderRejected(reason, code=code)


def check_client_order_id(client_order_id: str, *, futures: bool) -> None:
    """Reject an id that does not fit Binance's pattern (spot -1100, futures -4015)."""
    if _CLIENT_ID.match(client_order_id):
        return
    if futures:
        raise reject(-4015, "Client order id is not valid.")
    raise reject(
        -1100,
        "Illegal characters found in parameter 'newClientOrderId'; "
        f"legal range is '{CLIENT_ID_PATTERN}'.",
    )


def check_order(
    request: OrderRequest,
    instrument: Instrument,
    *,
    reference_price: Decimal | None,
    waive_notional: bool = False,
) -> None:
    """Raise OrderRejected when `request` breaks one of `instrument`'s filters.

    `reference_price` values a market order for the notional filter (None: not checked);
    `waive_notional` skips it, as Binance does for reduce-only futures orders.
    """
    if request.type is OrderType.LIMIT and request.price is None:
        raise reject(
            -1102, "Mandatory parameter 'price' was not sent, was empty/null, or malformed."
        )
    if instrument.is_derivative:
        _check_futures(request, instrument)
    else:
        _check_spot(request, instrument)
    price = request.price if request.type is OrderType.LIMIT else reference_price
    if price is None or waive_notional:
        return
    if request.quantity * price < instrument.min_notional:
        if instrument.is_derivative:
            raise reject(
                -4164,
                f"Order's notional must be no smaller than {_plain(instrument.min_notional)} "
                "(unless you choose reduce only).",
            )
        raise reject(-1013, "Filter failure: NOTIONAL")


def _check_spot(request: OrderRequest, inst: Instrument) -> None:
    qty = request.quantity
    if not _lot_ok(qty, inst.min_qty, inst.max_qty, inst.step_size):
        raise reject(-1013, "Filter failure: LOT_SIZE")
    if request.type is OrderType.MARKET and not _lot_ok(
        qty,
        inst.market_min_qty or Decimal(0),
        inst.market_max_qty,
        inst.market_step_size or Decimal(0),
    ):
        raise reject(-1013, "Filter failure: MARKET_LOT_SIZE")
    if request.type is OrderType.LIMIT:
        price = request.price or Decimal(0)
        if price <= 0 or not is_multiple(price, inst.tick_size):
            raise reject(-1013, "Filter failure: PRICE_FILTER")


def _check_futures(request: OrderRequest, inst: Instrument) -> None:
    qty = request.quantity
    if qty <= 0:
        raise reject(-4003, "Quantity less than or equal to zero.")
    if _decimals(qty) > _decimals(inst.step_size):
        raise reject(-1111, "Precision is over the maximum defined for this asset.")
    if not is_multiple(qty, inst.step_size):
        raise reject(-4023, "Qty not increased by step size.")
    if qty < inst.min_qty:
        raise reject(-4004, "Quantity less than min quantity.")
    max_qty = inst.market_max_qty if request.type is OrderType.MARKET else None
    max_qty = max_qty or inst.max_qty
    if max_qty is not None and qty > max_qty:
        raise reject(-4005, "Quantity greater than max quantity.")
    if request.type is OrderType.LIMIT:
        price = request.price or Decimal(0)
        if price <= 0:
            raise reject(-4001, "Price less than 0.")
        if _decimals(price) > _decimals(inst.tick_size):
            raise reject(-1111, "Precision is over the maximum defined for this asset.")
        if not is_multiple(price, inst.tick_size):
            raise reject(-4014, "Price not increased by tick size.")


def _lot_ok(qty: Decimal, min_qty: Decimal, max_qty: Decimal | None, step: Decimal) -> bool:
    if qty <= 0 or qty < min_qty:
        return False
    if max_qty is not None and max_qty > 0 and qty > max_qty:
        return False
    # Binance's LOT_SIZE rule: (quantity - minQty) % stepSize == 0.
    return is_multiple(qty - min_qty, step)


def _decimals(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")
