"""One backoff state for every request path of the loop while the exchange is failing.

A temporary exchange error (network, timeout, 5xx, maintenance) on any job opens the
circuit: no job sends a request until `resume_at` (exponential backoff with jitter, capped
at `max_seconds`, so entries resume within about that long after the exchange is back).
The poll job is the probe: once the backoff has passed it tries again, and its success
closes the circuit. Orders already in flight (a hedge being finished or unwound) are not
held back by it: the executor's own retries handle those.
"""

from __future__ import annotations

import random
from collections.abc import Callable


class ExchangeCircuit:
    """Failures in a row, and the monotonic time before which no request is sent."""

    def __init__(
        self,
        monotonic: Callable[[], float],
        *,
        max_seconds: float = 15.0,
        rng: random.Random | None = None,
    ) -> None:
        self._now = monotonic
        self._max = max_seconds
        self._rng = rng or random.Random()
        self.failures = 0
        self.resume_at = 0.0

    @property
    def open(self) -> bool:
        """Tell whether requests must wait (the backoff after a failure has not passed)."""
        return self._now() < self.resume_at

    def seconds_left(self) -> float:
        return max(0.0, self.resume_at - self._now())

    def failure(self) -> float:
        """Count one failure; return the backoff before the next request (≤ `max_seconds`)."""
        self.failures += 1
        delay = 2.0 ** min(self.failures, 10) * (0.5 + self._rng.random())  # jitter
        delay = min(self._max, delay)
        self.resume_at = max(self.resume_at, self._now() + delay)
        return delay

    def success(self) -> int:
        """Close the circuit; return how many failures in a row it had counted."""
        failures, self.failures, self.resume_at = self.failures, 0, 0.0
        return failures
