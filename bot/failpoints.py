"""Named crash points for the crash-recovery tests, in the spirit of TiKV's fail points.

Inactive unless the environment variable CARRYBOT_FAILPOINT names a point; then reaching it
kills the process with SIGKILL, exactly as a power cut would, so the tests can prove that
start-up reconciliation repairs every step of opening a hedge.
"""

from __future__ import annotations

import os
import signal

_ACTIVE = os.environ.get("CARRYBOT_FAILPOINT", "")

OPEN_PERSISTED = "open.persisted"  # the hedge and its orders are in the ledger, nothing sent
LEG_ACKED = "leg.acked"  # the first leg's acknowledgement has arrived


def hit(name: str) -> None:
    """Kill the process here if CARRYBOT_FAILPOINT names this point."""
    if _ACTIVE and name == _ACTIVE:
        os.kill(os.getpid(), signal.SIGKILL)
