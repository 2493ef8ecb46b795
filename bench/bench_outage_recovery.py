"""Exchange outage: delay between the exchange coming back and the bot's first entry.

The real bot (live mode, SQLite ledger) runs against the fake Binance process; every
endpoint answers 503 for `--seconds` (default 120) while trading is resumed underneath it;
then the exchange is back. Prints the delay to the first entry order and how many
position-risk requests were sent during the outage (evaluate runs every second).

    python bench/bench_outage_recovery.py --seconds 120
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.e2e.reliability_kit import btc_attractive_env, measure_outage_recovery  # noqa: E402
from tests.fakes.fixtures import FakeBinanceProcess  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="outage length")
    args = parser.parse_args()
    fake = FakeBinanceProcess(standard=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite+aiosqlite:///{tmp}/ledger.db"
            env = btc_attractive_env(fake, Path(tmp), url)
            figures = measure_outage_recovery(env, args.seconds)
    finally:
        fake.stop()
    print(f"outage of {figures['outage_seconds']:.0f} s (every endpoint 503)")
    print(f"first entry {figures['first_entry_after_seconds']:.1f} s after the exchange was back")
    print(f"position-risk requests during the outage: {figures['position_risk_during_outage']}")


if __name__ == "__main__":
    main()
