"""The market the simulated account trades against, as the caller last set it.

Instruments (filters), depth per symbol, best quotes, perpetual marks and the fill-ratio
faults a test injects. A quote that disagrees with the stored depth drops the depth (the
depth is older); a depth with both sides also sets the quote.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from bot.domain import Instrument, OrderBook, OrderRequest, OrderType, Quote, Side
from bot.exchange.sim_book import Level


class SimMarket:
    """Market state of one simulated account: read by matching, margin and filters."""

    def __init__(
        self, instruments: Mapping[str, Instrument], *, slippage_bps: Decimal, depth_levels: int
    ) -> None:
        self.instruments: dict[str, Instrument] = dict(instruments)
        self.slippage_bps = slippage_bps
        self.depth_levels = depth_levels
        self.books: dict[str, OrderBook] = {}
        self.quotes: dict[str, Quote] = {}
        self.marks: dict[str, Decimal] = {}
        self.fill_ratios: dict[str, Decimal] = {}

    def set_book(self, book: OrderBook) -> None:
        """Store the depth of one symbol and, when it has both sides, its best quote."""
        self.books[book.symbol] = book
        if book.bids and book.asks:
            (bid, bid_qty), (ask, ask_qty) = book.bids[0], book.asks[0]
            self.quotes[book.symbol] = Quote(
                book.symbol, bid, ask, bid_qty, ask_qty, book.timestamp
            )

    def set_quote(self, quote: Quote) -> None:
        """Store the best bid/ask of one symbol, dropping a depth that no longer agrees."""
        book = self.books.get(quote.symbol)
        if book is not None and not _book_agrees(book, quote):
            del self.books[quote.symbol]  # the depth is older than this quote
        self.quotes[quote.symbol] = quote

    def set_fill_ratio(self, symbol: str, ratio: Decimal | None) -> None:
        """Fill only `ratio` of every later market order on `symbol` (None: back to normal)."""
        if ratio is None:
            self.fill_ratios.pop(symbol, None)
        elif not 0 <= ratio <= 1:
            raise ValueError(f"fill ratio must be within [0, 1], got {ratio}")
        else:
            self.fill_ratios[symbol] = ratio

    def is_derivative(self, symbol: str) -> bool:
        """Tell whether `symbol` is a known futures contract."""
        inst = self.instruments.get(symbol)
        return inst is not None and inst.is_derivative

    def derivative(self, symbol: str) -> Instrument | None:
        """Return the futures instrument of `symbol`, None when unknown or spot."""
        inst = self.instruments.get(symbol)
        return inst if inst is not None and inst.is_derivative else None

    def mid(self, symbol: str) -> Decimal | None:
        """Return the mid of the last quote of `symbol`, None without a two-sided one."""
        quote = self.quotes.get(symbol)
        if quote is None or quote.bid <= 0 or quote.ask <= 0:
            return None
        return quote.mid

    def mark(self, symbol: str, fallback: Decimal) -> Decimal:
        """Return the mark of `symbol`, else its mid, else `fallback`."""
        return self.marks.get(symbol) or self.mid(symbol) or fallback

    def reference_price(self, inst: Instrument, req: OrderRequest) -> Decimal | None:
        """Price the notional filter and margin check use for an order."""
        if req.type is OrderType.LIMIT:
            return req.price
        if inst.is_derivative and inst.symbol in self.marks:
            return self.marks[inst.symbol]
        return self.mid(inst.symbol)

    def levels(self, symbol: str, side: Side) -> list[Level] | None:
        """Return the levels a `side` order may take (at most `depth_levels`), None: no depth."""
        book = self.books.get(symbol)
        if book is None:
            return None
        levels = book.asks if side is Side.BUY else book.bids
        return list(levels[: self.depth_levels]) if levels else None

    def best(self, symbol: str, side: Side) -> Decimal | None:
        """Return the best price a `side` order meets on the quote (None without a quote)."""
        quote = self.quotes.get(symbol)
        if quote is None:
            return None
        return quote.ask if side is Side.BUY else quote.bid


def _book_agrees(book: OrderBook, quote: Quote) -> bool:
    if not book.bids or not book.asks:
        return False
    return book.bids[0][0] == quote.bid and book.asks[0][0] == quote.ask
