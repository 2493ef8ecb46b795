"""The bot's trading loop, in its jobs (see `bot.trading.loop`)."""

from bot.trading.context import LoopContext, LoopPorts, LoopState, TradingParts
from bot.trading.loop import MarketFeed, TradingLoop

__all__ = ["LoopContext", "LoopPorts", "LoopState", "MarketFeed", "TradingLoop", "TradingParts"]
