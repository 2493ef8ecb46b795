"""An exchange outage: every request path backs off together, and entries resume quickly.

The backoff cap is configured at 5 s (the default is 15 s) and the outage lasts four caps,
so the backoff reaches its cap well before the exchange is back; the bounds scale with the
cap. `bench/bench_outage_recovery.py` measures the default cap over a 120 s outage.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.reliability_kit import btc_attractive_env, measure_outage_recovery, tune
from tests.fakes.fixtures import FakeBinanceProcess

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
CAP_SECONDS = 5
OUTAGE_SECONDS = 4 * CAP_SECONDS


async def test_after_an_outage_entries_resume_within_the_backoff_cap_and_nothing_polls_meanwhile(
    fake_proc: FakeBinanceProcess, pg_url: str, tmp_path: Path
) -> None:
    env = btc_attractive_env(fake_proc, tmp_path, pg_url)
    tune(env, "exchange", outage_backoff_max_seconds=CAP_SECONDS)

    figures = measure_outage_recovery(env, OUTAGE_SECONDS)

    print(f"\nFIGURE outage recovery: {figures}")
    # cap + a poll and an evaluate interval (1 s each) + sending
    assert figures["first_entry_after_seconds"] <= CAP_SECONDS + 3, figures
    # Evaluate runs every second (one request a second without the backoff); position risk
    # follows the shared backoff instead: at most one request per backoff window, the windows
    # being the cap apart once the backoff has ramped up (1-3 s, 2-5 s, then 4-5 s).
    outage = figures["outage_measured_seconds"]  # with the `resume` run inside it
    assert outage >= OUTAGE_SECONDS
    assert figures["position_risk_during_outage"] <= outage / CAP_SECONDS + 3, figures
