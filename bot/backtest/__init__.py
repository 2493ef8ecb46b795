"""Backtests: historical data, the replay market-data source, the engine, reports, sweeps."""

from bot.backtest.book import SyntheticBook
from bot.backtest.history import History, SymbolHistory, load_history
from bot.backtest.replay import DataRange, ReplaySource

__all__ = ["DataRange", "History", "ReplaySource", "SymbolHistory", "SyntheticBook", "load_history"]
