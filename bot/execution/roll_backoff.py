"""Backoff after a roll that was denied or failed: a hedge's roll is not retried every cycle.

A roll the exchange keeps refusing (or that the executor cannot size) would otherwise be
tried at every evaluation inside the roll window, each attempt sending orders and writing
events. So, per hedge:

- after a denied or failed roll the hedge's roll cools down `roll_failure_backoff_seconds`,
  doubling with every further failure, capped at `roll_failure_backoff_max_seconds`; while
  it cools down the strategy's roll is dropped before the risk gate (no order, no event);
- each condition (what went wrong: a denial's cause, an order's error code, the roll left
  undone) is reported once as an event until it clears; a repeat is only logged;
- a roll done, or the hedge closed, clears the hedge's failures and conditions.

When the roll cannot be done before `exit_before_delivery_hours`, the strategy closes the
hedge instead (`strategies/dated_basis.py`). State is in memory, on the injected
monotonic clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class _HedgeRolls:
    failures: int = 0
    until: float = 0.0
    reason: str = ""
    reported: set[str] = field(default_factory=set)


class RollBackoff:
    """Per-hedge cool-downs and once-per-condition reports of failed rolls."""

    def __init__(
        self,
        monotonic: Callable[[], float],
        *,
        first_seconds: float = 60.0,
        max_seconds: float = 3600.0,
    ) -> None:
        self._now = monotonic
        self._first = first_seconds
        self._max = max(max_seconds, first_seconds)
        self._hedges: dict[int, _HedgeRolls] = {}

    def blocked(self, hedge_id: int) -> str | None:
        """Why `hedge_id` may not try a roll now (cooling down), or None."""
        state = self._hedges.get(hedge_id)
        if state is None:
            return None
        left = state.until - self._now()
        if left <= 0:
            return None
        return f"roll cooling down {left:.0f}s more after {state.failures} failed ({state.reason})"

    def record_failure(self, hedge_id: int, reason: str) -> float:
        """Count one denied or failed roll of `hedge_id`; return its cool-down in seconds."""
        state = self._hedges.setdefault(hedge_id, _HedgeRolls())
        state.failures += 1
        seconds: float = min(self._max, self._first * 2.0 ** (state.failures - 1))
        state.until = self._now() + seconds
        state.reason = reason
        return seconds

    def failures(self, hedge_id: int) -> int:
        """How many rolls of `hedge_id` failed since the last one done."""
        state = self._hedges.get(hedge_id)
        return state.failures if state else 0

    def first_report(self, hedge_id: int, condition: str) -> bool:
        """True the first time `condition` is seen for `hedge_id` since it last cleared."""
        state = self._hedges.setdefault(hedge_id, _HedgeRolls())
        if condition in state.reported:
            return False
        state.reported.add(condition)
        return True

    def clear(self, hedge_id: int) -> bool:
        """Forget `hedge_id`'s failures and conditions; True when there were any."""
        state = self._hedges.pop(hedge_id, None)
        return state is not None and (state.failures > 0 or bool(state.reported))
