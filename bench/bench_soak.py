"""Soak run: the real bot against the fake Binance with N symbols, polling every second.

Prints peak RSS, RSS growth per hour (least squares after a warm-up minute), mean and p99
poll/evaluate times (from the bot's heartbeat), ledger rows written, and the exchange weight
used per minute as a share of Binance's budgets.

    python bench/bench_soak.py --minutes 10 --symbols 300
"""

from __future__ import annotations

import argparse
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fakes.fixtures import FakeBinanceProcess  # noqa: E402

CONFIG = """
[exchange]
spot_api_url = "{url}"
futures_api_url = "{url}"
[universe]
symbols = []
min_quote_volume_24h = 0
min_listing_age_days = 0
top_n = 10
[schedule]
poll_seconds = {poll}
evaluate_seconds = {poll}
heartbeat_seconds = 10
balance_snapshot_seconds = 60
reconcile_seconds = 120
"""
SPOT_BUDGET, FUTURES_BUDGET = 6000, 2400


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def slope_per_hour(samples: list[tuple[float, int]]) -> float:
    n = len(samples)
    if n < 2:
        return 0.0
    mx = sum(t for t, _ in samples) / n
    my = sum(v for _, v in samples) / n
    den = sum((t - mx) ** 2 for t, _ in samples) or 1.0
    return sum((t - mx) * (v - my) for t, v in samples) / den * 3600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--symbols", type=int, default=300)
    parser.add_argument("--poll", type=float, default=1.0)
    args = parser.parse_args()
    seconds = args.minutes * 60
    fake = FakeBinanceProcess(universe=args.symbols)
    work = Path(tempfile.mkdtemp(prefix="carrybot-soak-"))
    db = work / "soak.db"
    (work / "carrybot.toml").write_text(CONFIG.format(url=fake.url, poll=args.poll))
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(REPO),
        "LOG_LEVEL": "INFO",
        "DATABASE_URL": f"sqlite+aiosqlite:///{db}",
    }
    base = [sys.executable, "-m", "bot"]
    subprocess.run([*base, "db", "upgrade"], cwd=work, env=env, check=True, capture_output=True)
    log_path = work / "bot.log"
    with log_path.open("w") as log:
        bot = subprocess.Popen(
            [*base, "run", "--duration", str(seconds)],
            cwd=work,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        rss: list[tuple[float, int]] = []
        weights: list[tuple[int, int]] = []
        started = time.monotonic()
        try:
            while bot.poll() is None:
                now = time.monotonic() - started
                value = rss_kib(bot.pid)
                if value is not None:
                    rss.append((now, value))
                if now > 60:
                    used = fake.control("GET", "/_fake/state")["used_weight"]
                    weights.append((int(used["spot"]), int(used["futures"])))
                time.sleep(5)
        except KeyboardInterrupt:
            bot.send_signal(signal.SIGINT)
        bot.wait()
    fake.stop()
    text = log_path.read_text()
    beats = re.findall(
        r"poll mean ([\d.]+) ms p99 ([\d.]+) ms, evaluate mean ([\d.]+) ms "
        r"p99 ([\d.]+) ms",
        text,
    )
    with sqlite3.connect(db) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name != 'alembic_version'"
            )
        ]
        rows = {
            t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]  # noqa: S608
            for t in tables
        }
    warm = [(t, v) for t, v in rss if t >= 60] or rss
    print(
        f"soak: {args.symbols} symbols, poll every {args.poll:g}s, {args.minutes:g} min, "
        f"exit code {bot.returncode}"
    )
    print(
        f"peak RSS: {max(v for _, v in rss) / 1024:.1f} MiB; after 1 min "
        f"{warm[0][1] / 1024:.1f} MiB, at the end {rss[-1][1] / 1024:.1f} MiB"
    )
    print(f"RSS growth after the first minute: {slope_per_hour(warm) / 1024:+.1f} MiB/hour")
    if beats:
        last = beats[-1]
        print(
            f"poll: mean {last[0]} ms, p99 {last[1]} ms; evaluate: mean {last[2]} ms, "
            f"p99 {last[3]} ms (last 1000 cycles)"
        )
    print("ledger rows: " + ", ".join(f"{t} {n}" for t, n in sorted(rows.items()) if n))
    if weights:
        spot = [s for s, _ in weights]
        fut = [f for _, f in weights]
        print(
            f"weight per minute: spot mean {sum(spot) / len(spot):.0f} "
            f"({sum(spot) / len(spot) / SPOT_BUDGET:.1%} of {SPOT_BUDGET}), max {max(spot)}; "
            f"futures mean {sum(fut) / len(fut):.0f} "
            f"({sum(fut) / len(fut) / FUTURES_BUDGET:.1%} of {FUTURES_BUDGET}), "
            f"max {max(fut)}"
        )
    print(f"errors in log: {text.count(' ERROR ')}; log: {log_path}")


if __name__ == "__main__":
    main()
