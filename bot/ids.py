"""Hedge uids: short, sortable by time, unique across restarts, deterministic in backtests."""

from __future__ import annotations

import random

from bot.clock import Clock, ms_from_utc

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


class UidFactory:
    """Make 12-character uids: 8 characters of milliseconds, then 4 random ones.

    Pass a seeded `rng` (backtests) to get the same uids for the same run.
    """

    def __init__(self, clock: Clock, rng: random.Random | None = None) -> None:
        self._clock = clock
        self._rng = rng or random.SystemRandom()
        self._last = ""

    def __call__(self) -> str:
        while True:
            ms = ms_from_utc(self._clock.now()) % (32**8)
            stamp = "".join(_ALPHABET[(ms >> (5 * i)) & 31] for i in reversed(range(8)))
            tail = "".join(self._rng.choice(_ALPHABET) for _ in range(4))
            uid = stamp + tail
            if uid != self._last:
                self._last = uid
                return uid
