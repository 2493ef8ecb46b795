"""An exchange outage: every request path backs off together, and entries resume quickly."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.reliability_kit import btc_attractive_env, measure_outage_recovery
from tests.fakes.fixtures import FakeBinanceProcess

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
OUTAGE_SECONDS = 40
CAP_SECONDS = 15


async def test_after_an_outage_entries_resume_within_the_backoff_cap_and_nothing_polls_meanwhile(
    fake_proc: FakeBinanceProcess, pg_url: str, tmp_path: Path
) -> None:
    env = btc_attractive_env(fake_proc, tmp_path, pg_url)

    figures = measure_outage_recovery(env, OUTAGE_SECONDS)

    print(f"\nFIGURE outage recovery: {figures}")
    # cap + a poll and an evaluate interval (1 s each) + sending
    assert figures["first_entry_after_seconds"] <= CAP_SECONDS + 3, figures
    # evaluate runs every second; position risk follows the shared backoff instead
    assert figures["position_risk_during_outage"] <= OUTAGE_SECONDS / 4, figures
