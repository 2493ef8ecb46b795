"""Soak run: the real bot against the fake Binance with N symbols, polling every second.

Prints peak RSS, RSS growth per hour (least squares after a warm-up minute), mean and p99
poll/evaluate times (from the bot's heartbeat), ledger rows written, and the exchange weight
used per minute as a share of Binance's budgets.

With --compare-web the CPU time (user + sys) of each bot is compared twice: over the whole run
(from `wait4`) and after the warm-up minute (from /proc; start-up — imports, 300 markets
loaded — varies by more than the dashboard costs on a loaded machine, so the steady state is
the quieter figure). The load average is printed at the start and end of each run. The
scraped bot's CPU while it served each request (its threads' schedstat, read just before and
after) less its mean rate over that wall time estimates each request's own CPU: a figure from
the running bot that does not depend on the other bots' noise.

    python bench/bench_soak.py --minutes 10 --symbols 300
    python bench/bench_soak.py --minutes 10 --compare-web   # dashboard off vs on, CPU time
    python bench/bench_soak.py --minutes 5 --compare-web --runs 3   # median of 3, with the
        # spread, and a control bot (dashboard off too) for the noise of the comparison
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

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


class Soak:
    """One bot process against its own fake Binance, sampled every few seconds."""

    def __init__(self, args: argparse.Namespace, *, web_port: int | None, label: str) -> None:
        self.args = args
        self.label = label
        self.web_port = web_port
        self.fake = FakeBinanceProcess(universe=args.symbols)
        self.work = Path(tempfile.mkdtemp(prefix="carrybot-soak-"))
        self.db = self.work / "soak.db"
        web = f"[web]\nport = {web_port}\n" if web_port is not None else "[web]\nenabled = false\n"
        (self.work / "carrybot.toml").write_text(
            CONFIG.format(url=self.fake.url, poll=args.poll) + web
        )
        env = {
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(REPO),
            "LOG_LEVEL": "INFO",
            "DATABASE_URL": f"sqlite+aiosqlite:///{self.db}",
        }
        base = [sys.executable, "-m", "bot"]
        subprocess.run(
            [*base, "db", "upgrade"], cwd=self.work, env=env, check=True, capture_output=True
        )
        self.log_path = self.work / "bot.log"
        self._log = self.log_path.open("w")
        self.bot = subprocess.Popen(
            [*base, "run", "--duration", str(args.minutes * 60)],
            cwd=self.work,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.started = time.monotonic()
        self.rss: list[tuple[float, int]] = []
        self.weights: list[tuple[int, int]] = []
        self.scrapes = 0
        self.scrape_cpu: list[tuple[float, float]] = []  # (CPU ns of the bot, wall s) a scrape
        self.cpu_seconds = 0.0
        self.cpu_at_warm: float | None = None  # CPU seconds at the end of the warm-up minute
        self.warm_at = 0.0
        self.cpu_last: tuple[float, float] | None = None  # (seconds into the run, CPU seconds)
        self.returncode: int | None = None

    def sample(self, scrape: bool) -> bool:
        """Take one sample; scrape the dashboard like Prometheus plus an open page would."""
        if self.returncode is not None:
            return False
        done = os.wait4(self.bot.pid, os.WNOHANG)
        if done[0] != 0:
            self._finish(done)
            return False
        now = time.monotonic() - self.started
        used = cpu_seconds(self.bot.pid)
        if used is not None:
            if now >= 60 and self.cpu_at_warm is None:
                self.cpu_at_warm = used
                self.warm_at = now
            self.cpu_last = (now, used)
        value = rss_kib(self.bot.pid)
        if value is not None:
            self.rss.append((now, value))
        if now > 60:
            used = self.fake.control("GET", "/_fake/state")["used_weight"]
            self.weights.append((int(used["spot"]), int(used["futures"])))
        if scrape and self.web_port is not None:
            for path in self.args.scrape_paths.split(","):
                try:
                    cpu, wall = task_cpu_ns(self.bot.pid), time.monotonic()
                    urllib.request.urlopen(
                        f"http://127.0.0.1:{self.web_port}{path}", timeout=10
                    ).read()
                    after = task_cpu_ns(self.bot.pid)
                    if cpu is not None and after is not None and now >= 60:
                        self.scrape_cpu.append((after - cpu, time.monotonic() - wall))
                    self.scrapes += 1
                except OSError:
                    pass
        return True

    def _finish(self, done: tuple[int, int, Any]) -> None:
        _, status, usage = done
        self.returncode = os.waitstatus_to_exitcode(status)
        self.cpu_seconds = usage.ru_utime + usage.ru_stime
        self._log.close()
        self.fake.stop()

    def steady_cpu_per_minute(self) -> float | None:
        """CPU seconds a minute from the end of the warm-up minute to the last sample."""
        if self.cpu_at_warm is None or self.cpu_last is None or self.cpu_last[0] <= self.warm_at:
            return None
        return (self.cpu_last[1] - self.cpu_at_warm) / (self.cpu_last[0] - self.warm_at) * 60

    def scrape_figures(self, steady: float) -> tuple[float, float, float, float]:
        """The bot's CPU while it served each request (after the warm-up minute), less what
        it spends in that much time anyway at its mean rate: (during, wall, background, own)
        in ms a request."""
        n = len(self.scrape_cpu)
        during = sum(c for c, _ in self.scrape_cpu) / n / 1e6
        wall = sum(w for _, w in self.scrape_cpu) / n * 1000
        background = steady / 60 * wall
        return during, wall, background, during - background

    def scrape_share(self, steady: float) -> float:
        """The requests' own CPU as a share of the bot's CPU (e.g. 0.02 = 2%)."""
        own = self.scrape_figures(steady)[3]
        scrapes_a_minute = (
            60 / float(self.args.scrape) * len(str(self.args.scrape_paths).split(","))
        )
        per_minute = own * scrapes_a_minute
        return per_minute / (steady * 1000)

    def scrape_line(self, steady: float) -> str:
        during, wall, background, own = self.scrape_figures(steady)
        return (
            f"CPU of the bot while it served a request ({len(self.scrape_cpu)} after the "
            f"warm-up minute, /proc schedstat): {during:.1f} ms in {wall:.1f} ms wall, less "
            f"{background:.1f} ms of its own work at its mean rate = {own:.1f} ms a request, "
            f"{self.scrape_share(steady):.1%} of its {steady:.3f} CPU s/min"
        )

    def wait(self) -> None:
        if self.returncode is None:
            self._finish(os.wait4(self.bot.pid, 0))

    def report(self) -> dict[str, Any]:
        text = self.log_path.read_text()
        beats = re.findall(
            r"poll mean ([\d.]+) ms p99 ([\d.]+) ms, evaluate mean ([\d.]+) ms "
            r"p99 ([\d.]+) ms",
            text,
        )
        with sqlite3.connect(self.db) as conn:
            tables = [
                r[0]
                for r in conn.execute(
                    "SELECT name FROM sqlite_master "
                    "WHERE type='table' AND name != 'alembic_version'"
                )
            ]
            rows = {
                t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]  # noqa: S608
                for t in tables
            }
        return {"text": text, "beats": beats, "rows": rows}

    def print_report(self) -> None:
        args = self.args
        r = self.report()
        rss, beats, rows, text = self.rss, r["beats"], r["rows"], r["text"]
        warm = [(t, v) for t, v in rss if t >= 60] or rss
        print(
            f"soak{self.label}: {args.symbols} symbols, poll every {args.poll:g}s, "
            f"{args.minutes:g} min, exit code {self.returncode}"
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
        if self.weights:
            spot = [s for s, _ in self.weights]
            fut = [f for _, f in self.weights]
            print(
                f"weight per minute: spot mean {sum(spot) / len(spot):.0f} "
                f"({sum(spot) / len(spot) / SPOT_BUDGET:.1%} of {SPOT_BUDGET}), max {max(spot)}; "
                f"futures mean {sum(fut) / len(fut):.0f} "
                f"({sum(fut) / len(fut) / FUTURES_BUDGET:.1%} of {FUTURES_BUDGET}), "
                f"max {max(fut)}"
            )
        steady = self.steady_cpu_per_minute()
        print(
            f"CPU time of the bot process: {self.cpu_seconds:.1f} s"
            + (f"; after the warm-up minute {steady:.3f} s a minute" if steady else "")
        )
        if self.web_port is not None:
            print(f"dashboard requests served during the run: {self.scrapes}")
            if self.scrape_cpu and steady:
                print(self.scrape_line(steady))
        print(f"errors in log: {text.count(' ERROR ')}; log: {self.log_path}")


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a running process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS


def task_cpu_ns(pid: int) -> float | None:
    """Nanoseconds on CPU of every thread of a running process (/proc/PID/task/*/schedstat,
    nanosecond resolution where /proc/PID/stat counts 10 ms ticks)."""
    total = 0.0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, IndexError, ValueError):
                continue  # a thread that just ended
    except OSError:
        return None
    return total


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_once(args: argparse.Namespace) -> list[Soak]:
    """One soak: one bot, or (--compare-web) the bots off / on / control side by side."""
    if not args.compare_web:
        soaks = [Soak(args, web_port=None, label="")]
    else:
        soaks = [
            Soak(args, web_port=None, label=" (dashboard off)"),
            Soak(args, web_port=free_port(), label=" (dashboard on, scraped)"),
        ]
        if args.control:
            soaks.append(Soak(args, web_port=None, label=" (dashboard off, control)"))
    last_scrape = 0.0
    print(f"load average at the start: {load_average()}")
    try:
        while True:
            now = time.monotonic()
            scrape = now - last_scrape >= args.scrape
            if scrape:
                last_scrape = now
            alive = [s.sample(scrape) for s in soaks]
            if not any(alive):
                break
            time.sleep(min(5.0, args.scrape))
    except KeyboardInterrupt:
        for s in soaks:
            s.bot.send_signal(signal.SIGINT)
    for s in soaks:
        s.wait()
    print(f"load average at the end: {load_average()}\n")
    for s in soaks:
        s.print_report()
        print()
    return soaks


def spread(values: list[float]) -> str:
    """'median (min to max)' of percentages."""
    pct = sorted((v - 1) * 100 for v in values)
    return f"{statistics.median(pct):+.1f}% (runs: {', '.join(f'{p:+.1f}%' for p in pct)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--symbols", type=int, default=300)
    parser.add_argument("--poll", type=float, default=1.0)
    parser.add_argument(
        "--compare-web",
        action="store_true",
        help="run bots at once, dashboard off and on (scraped every --scrape seconds), "
        "and compare their CPU time",
    )
    parser.add_argument(
        "--control",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --compare-web, a third bot with the dashboard off: the off/off ratio is "
        "the noise floor of the comparison (default on)",
    )
    parser.add_argument("--runs", type=int, default=1, help="repeat the soak, report the median")
    parser.add_argument("--scrape", type=float, default=15.0, help="seconds between scrapes")
    parser.add_argument(
        "--scrape-paths",
        default="/metrics",
        help="paths fetched at each scrape, comma-separated (default: Prometheus alone; "
        "/metrics,/,/api/status adds an open overview page)",
    )
    args = parser.parse_args()
    costs: list[float] = []
    controls: list[float] = []
    steady_costs: list[float] = []
    steady_controls: list[float] = []
    shares: list[float] = []
    for run in range(1, args.runs + 1):
        if args.runs > 1:
            print(f"=== run {run} of {args.runs}")
        soaks = run_once(args)
        if not args.compare_web:
            continue
        off, on = soaks[0], soaks[1]
        ratio = on.cpu_seconds / off.cpu_seconds if off.cpu_seconds else float("nan")
        costs.append(ratio)
        line = (
            f"dashboard CPU cost: {on.cpu_seconds:.1f} s with the dashboard served and scraped "
            f"every {args.scrape:g} s ({args.scrape_paths}) vs {off.cpu_seconds:.1f} s "
            f"without = {ratio:.3f}x ({(ratio - 1) * 100:+.1f}%; target < +5%)"
        )
        if args.control:
            control = soaks[2].cpu_seconds / off.cpu_seconds if off.cpu_seconds else float("nan")
            controls.append(control)
            line += f"; control bot, also without: {(control - 1) * 100:+.1f}% (the noise)"
        print(line + "; the bots ran at the same time")
        steady = [s.steady_cpu_per_minute() for s in soaks]
        if on.scrape_cpu and steady[1]:
            shares.append(1 + on.scrape_share(steady[1]))
        if all(v for v in steady):
            base = steady[0] or 1.0
            steady_costs.append((steady[1] or 0) / base)
            line = (
                f"after the warm-up minute: {steady[1]:.3f} vs {base:.3f} CPU s/min "
                f"({(steady_costs[-1] - 1) * 100:+.1f}%)"
            )
            if args.control:
                steady_controls.append((steady[2] or 0) / base)
                line += f"; control {(steady_controls[-1] - 1) * 100:+.1f}%"
            print(line)
        print()
    if args.compare_web and args.runs > 1:
        print(f"dashboard CPU cost over {args.runs} runs: median {spread(costs)}")
        if controls:
            print(f"control (dashboard off twice) over {args.runs} runs: median {spread(controls)}")
        if steady_costs:
            print(f"after the warm-up minute: median {spread(steady_costs)}")
        if steady_controls:
            print(f"control after the warm-up minute: median {spread(steady_controls)}")
        if shares:
            print(f"the requests' own CPU (schedstat), share of the bot's: {spread(shares)}")


if __name__ == "__main__":
    main()
