"""The simulator's fee model: Binance's maker/taker rates and which asset pays the fee.

Spot buys pay the fee in the base asset (in the quote asset with `spot_fee_in_quote`, as
on Bitstamp), spot sells in the quote asset; futures pay in USDT from the futures wallet.
Taker for immediate fills, maker for resting ones. The rates are `FeeParams.effective()`
(VIP tier and BNB discount applied); with `bnb_discount` the discounted fee is charged in
USDT, the value of the BNB Binance would take (spot buys then take no fee in the base).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from bot.domain import Instrument, Side
from bot.domain.params import FeeParams


@dataclass(frozen=True, slots=True)
class SpotCharge:
    """What one spot fill moves: `pay` of `pay_asset` out, `receive` of `receive_asset` in.

    With `fee_from_receive` the fee is then taken from what was received (base-fee buys,
    sells); otherwise it is already part of `pay` (quote-fee buys).
    """

    pay_asset: str
    pay: Decimal
    receive_asset: str
    receive: Decimal
    fee: Decimal
    fee_asset: str
    fee_from_receive: bool


@dataclass(frozen=True, slots=True)
class FeeModel:
    """Fee rates of the simulated venue, and whether spot buys pay their fee in quote."""

    rates: FeeParams
    spot_fee_in_quote: bool = False

    def spot_buy_budget(self, cost: Decimal) -> Decimal:
        """Return what a spot buy of `cost` (quote) needs in the wallet, its fee included."""
        if self.spot_fee_in_quote:
            return cost + cost * self.rates.spot_taker
        return cost

    def spot_fill(
        self, inst: Instrument, side: Side, price: Decimal, qty: Decimal, *, maker: bool
    ) -> SpotCharge:
        """Return the wallet movements and the fee of one spot fill."""
        rate = self.rates.spot_maker if maker else self.rates.spot_taker
        notional = price * qty
        if side is Side.BUY and self.spot_fee_in_quote:
            fee = notional * rate
            return SpotCharge(inst.quote, notional + fee, inst.base, qty, fee, inst.quote, False)
        if side is Side.BUY:
            fee = qty * rate
            return SpotCharge(inst.quote, notional, inst.base, qty, fee, inst.base, True)
        fee = notional * rate
        return SpotCharge(inst.base, qty, inst.quote, notional, fee, inst.quote, True)

    def futures_fee(self, price: Decimal, qty: Decimal, *, maker: bool) -> Decimal:
        """Return the USDT fee of one futures fill."""
        rate = self.rates.futures_maker if maker else self.rates.futures_taker
        return price * qty * rate
