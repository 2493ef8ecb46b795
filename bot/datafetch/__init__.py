"""Download Binance history into the layout of ../shared/data (`carrybot data fetch`)."""

from bot.datafetch.fetcher import (
    FetchSettings,
    Job,
    JobResult,
    NoProgress,
    Progress,
    Status,
    fetch_history,
    plan,
)
from bot.datafetch.request import FetchRequest, Kind, SymbolSpec, parse_request
from bot.datafetch.source import BinanceHistory, HistorySource, SourceSettings

__all__ = [
    "BinanceHistory",
    "FetchRequest",
    "FetchSettings",
    "HistorySource",
    "Job",
    "JobResult",
    "Kind",
    "NoProgress",
    "Progress",
    "SourceSettings",
    "Status",
    "SymbolSpec",
    "fetch_history",
    "parse_request",
    "plan",
]
