"""Profile the five-pair full-history backtest of `bench_backtest.py` with cProfile.

Prints the top functions by cumulative and by own (self) time; `--save FILE` also keeps the
raw profile for `python -m pstats FILE`. `--pyinstrument` samples instead (much less
overhead; `pip install pyinstrument`) and prints the call tree down to 1% of the time.

    .venv/bin/python bench/profile_backtest.py [DATA_DIR] [--top N] [--save FILE]
                                               [--strategy NAME] [--pyinstrument]
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


def sampled(root: Path, strategy: str | None) -> None:
    """Profile with pyinstrument's sampler; print the call tree (frames ≥ 1% of the time)."""
    from pyinstrument import Profiler

    quiet_bot_logs()
    profiler = Profiler(interval=0.002)
    profiler.start()
    total, _, _, line = one_backtest(root, None, strategy=strategy)
    profiler.stop()
    print(f"profiled backtest: {total:.1f} s under pyinstrument; {line}")
    print(profiler.output_text(unicode=True, show_all=False, time="percent_of_total"))


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
    parser.add_argument("--pyinstrument", action="store_true")
    args = parser.parse_args()
    if args.pyinstrument:
        sampled(args.data, args.strategy)
    else:
        main(args.data, args.top, args.save, args.strategy)
