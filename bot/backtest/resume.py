"""Resuming a sweep: each finished combination leaves a marker; `--resume` skips those.

A combination's run writes `runs/NNN/finished.json` last, atomically, holding its row of
the ranking and what it was run with (config fingerprint, period, seed). A sweep started
again with `--resume` (after Ctrl-C, a lost Dask worker or a crash) takes the rows of the
markers that match their task and runs only the rest; a marker written for other
parameters (the grid or the base config changed) does not count.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.config import config_from_dict

if TYPE_CHECKING:
    from bot.backtest.sweep import SweepRow, SweepTask

FINISHED = "finished.json"
FORMAT = 1


def _identity(task: SweepTask, fingerprint: str) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "config_hash": fingerprint,
        "data_dir": task.data_dir,
        "start": task.start.isoformat() if task.start else None,
        "end": task.end.isoformat() if task.end else None,
        "seed": task.seed,
    }


def mark_finished(task: SweepTask, fingerprint: str, row: SweepRow) -> None:
    """Write the marker of a finished combination (temporary file, then an atomic rename)."""
    path = Path(task.out) / FINISHED
    data = {
        **_identity(task, fingerprint),
        "row": {
            "index": row.index,
            "label": row.label,
            "bot": row.bot,
            "passive": row.passive,
            "events": row.events,
        },
    }
    partial = path.with_name(f".{FINISHED}.partial")
    partial.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)


def clear_finished(task: SweepTask) -> None:
    """Remove the marker of `task` before it runs again."""
    (Path(task.out) / FINISHED).unlink(missing_ok=True)


def finished_row(task: SweepTask) -> SweepRow | None:
    """Return the row of `task` when a matching marker says it finished, else None."""
    from bot.backtest.sweep import SweepRow

    path = Path(task.out) / FINISHED
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    fingerprint = config_from_dict(task.raw, source=f"combination {task.index}").fingerprint()
    if not isinstance(data, dict) or any(
        data.get(k) != v for k, v in _identity(task, fingerprint).items()
    ):
        return None
    row = data.get("row") or {}
    if row.get("index") != task.index:
        return None
    return SweepRow(
        index=task.index,
        label=task.label,
        bot=dict(row.get("bot") or {}),
        passive=dict(row.get("passive") or {}),
        events=int(row.get("events") or 0),
    )


def split_finished(tasks: Sequence[SweepTask]) -> tuple[list[SweepRow], list[SweepTask]]:
    """Return (rows of the tasks already finished, tasks still to run)."""
    done: list[SweepRow] = []
    todo: list[SweepTask] = []
    for task in tasks:
        row = finished_row(task)
        if row is None:
            todo.append(task)
        else:
            done.append(row)
    return done, todo
