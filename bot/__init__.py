"""carrybot: spot–futures cash-and-carry on Binance."""

__version__ = "0.1.0"
