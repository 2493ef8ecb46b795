"""Backoff after failed entries: a pair that just failed is not retried every cycle.

A FAILED entry (one leg rejected and the other unwound) costs the spread and two fees; a
leg the exchange keeps refusing would otherwise be retried at every evaluation. So:

- each (pair, reason) cools down after a failure: `entry_failure_backoff_seconds`, doubling
  with every further failure of that pair for that reason, capped at
  `entry_failure_backoff_max_seconds`; a pair is blocked while any of its reasons is;
  a successful entry clears the pair;
- a filter error (-4164 min notional, -1013 filter failure, -1111 precision, -2027 max
  position, the -40xx quantity/price filters) means the cached instrument filters are out of
  date: the caller reloads them before the pair may be tried again;
- an account-level error (-2015/-2014/-1022 key or permissions, -2019/-2018/-2010 margin or
  balance) is not the pair's fault: every pair cools down, and after
  `account_failures_to_stop` such failures in a row (across pairs, no successful entry in
  between) the caller stops all entries and raises an alert.

State is kept in memory, with an injected monotonic clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

FILTER_CODES = frozenset(
    {-1013, -1111, -2027, -4003, -4004, -4005, -4013, -4014, -4023, -4024, -4164}
)
ACCOUNT_CODES = frozenset({-1002, -1022, -2010, -2014, -2015, -2018, -2019})
ALL_PAIRS = "*"


@dataclass(frozen=True, slots=True)
class EntryFailure:
    """What one failed entry means for the next ones."""

    pair: str
    reason: str
    cooldown_seconds: float
    reload_filters: bool
    account_level: bool
    stop_entries: bool


@dataclass(slots=True)
class _Cooldown:
    failures: int
    until: float


class EntryBackoff:
    """Per-pair, per-reason cool-downs after FAILED entries (see the module docstring)."""

    def __init__(
        self,
        monotonic: Callable[[], float],
        *,
        first_seconds: float = 60.0,
        max_seconds: float = 3600.0,
        account_failures_to_stop: int = 2,
    ) -> None:
        self._now = monotonic
        self._first = first_seconds
        self._max = max(max_seconds, first_seconds)
        self._account_to_stop = account_failures_to_stop
        self._cooldowns: dict[tuple[str, str], _Cooldown] = {}
        self._account_streak = 0

    def blocked(self, pair: str) -> tuple[str, float] | None:
        """Return (reason, seconds left) when `pair` may not be entered now."""
        now = self._now()
        worst: tuple[str, float] | None = None
        for (key, reason), cooldown in self._cooldowns.items():
            left = cooldown.until - now
            if key in (pair, ALL_PAIRS) and left > 0 and (worst is None or left > worst[1]):
                worst = (reason, left)
        return worst

    def blocks(self) -> dict[str, str]:
        """Return a denial reason per pair cooling down now (`ALL_PAIRS` blocks every pair)."""
        if not self._cooldowns:
            return {}
        out: dict[str, str] = {}
        for key in {k for k, _ in self._cooldowns}:
            hit = self.blocked(key)
            if hit is not None:
                what = "every pair" if key == ALL_PAIRS else key
                out[key] = f"{what} cooling down {hit[1]:.0f}s more after a failed entry ({hit[0]})"
        return out

    def record_failure(self, pair: str, codes: Iterable[int | None], reason: str) -> EntryFailure:
        """Count one FAILED entry of `pair`; `codes` are its orders' error codes."""
        known = [c for c in codes if c is not None]
        account = next((c for c in known if c in ACCOUNT_CODES), None)
        filters = next((c for c in known if c in FILTER_CODES), None)
        code = account if account is not None else filters
        if code is None and known:
            code = known[0]
        key = f"code {code}" if code is not None else reason
        scope = ALL_PAIRS if account is not None else pair
        cooldown = self._cooldowns.get((scope, key))
        failures = (cooldown.failures if cooldown else 0) + 1
        seconds = min(self._max, self._first * 2 ** (failures - 1))
        self._cooldowns[(scope, key)] = _Cooldown(failures, self._now() + seconds)
        if account is not None:
            self._account_streak += 1
        return EntryFailure(
            pair=pair,
            reason=key,
            cooldown_seconds=seconds,
            reload_filters=filters is not None,
            account_level=account is not None,
            stop_entries=account is not None and self._account_streak >= self._account_to_stop,
        )

    def record_success(self, pair: str) -> None:
        """Forget the pair's failures (and the account-level streak): it just worked."""
        self._account_streak = 0
        for key in [k for k in self._cooldowns if k[0] in (pair, ALL_PAIRS)]:
            del self._cooldowns[key]

    def reset_account(self) -> None:
        """Forget account-level failures (the operator resumed trading)."""
        self._account_streak = 0
        for key in [k for k in self._cooldowns if k[0] == ALL_PAIRS]:
            del self._cooldowns[key]
