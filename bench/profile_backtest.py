"""Profile the five-pair full-history backtest of `bench_backtest.py` with cProfile.

Prints the top functions by cumulative and by own (self) time; `--save FILE` also keeps the
raw profile for `python -m pstats FILE`.

    .venv/bin/python bench/profile_backtest.py [DATA_DIR] [--top N] [--save FILE]
                                               [--strategy NAME]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_backtest import DATA, one_backtest

from bot.cli.replay_options import quiet_bot_logs


def main(root: Path, top: int, save: Path | None, strategy: str | None) -> None:
    quiet_bot_logs()
    profile = cProfile.Profile()
    profile.enable()
    total, _, _, line = one_backtest(root, None, strategy=strategy)
    profile.disable()
    print(f"profiled backtest: {total:.1f} s under cProfile; {line}")
    stats = pstats.Stats(profile, stream=sys.stdout).strip_dirs()
    for order in ("cumulative", "tottime"):
        print(f"\n=== top {top} by {order} ===")
        stats.sort_stats(order).print_stats(top)
    if save is not None:
        profile.dump_stats(save)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data", nargs="?", type=Path, default=DATA)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--save", type=Path, default=None)
    parser.add_argument("--strategy", default=None)
    args = parser.parse_args()
    main(args.data, args.top, args.save, args.strategy)
