"""Run-folder retention (``--keep-runs N``): old run folders hold personal data, so prune them.

Only folders named like a run id (``YYYYMMDDTHHMMSSZ-xxxx``, which sorts by start time) are
touched; nothing else in the runs folder ever is. A folder without report.json belongs to a run
that is still going (or that crashed). It is left alone until it has been idle for
``UNFINISHED_GRACE``, so a nightly job never deletes the folder of a backfill running next to it.
"""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

__all__ = ["RUN_ID_PATTERN", "UNFINISHED_GRACE", "prune_runs"]

RUN_ID_PATTERN = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{4}")
UNFINISHED_GRACE = timedelta(days=7)
_REPORT = "report.json"


def prune_runs(
    runs_dir: Path,
    keep: int,
    *,
    now: datetime | None = None,
    unfinished_grace: timedelta = UNFINISHED_GRACE,
) -> list[Path]:
    """Delete all but the ``keep`` newest run folders in ``runs_dir``; returns what was deleted.

    Unfinished runs (no report.json) idle for less than ``unfinished_grace`` are kept too.
    """
    if keep < 1:
        raise ValueError(f"keep must be at least 1 (the run just made), got {keep}")
    if not runs_dir.is_dir():
        return []
    runs = sorted(
        (p for p in runs_dir.iterdir() if RUN_ID_PATTERN.fullmatch(p.name) and _real_dir(p)),
        key=lambda p: p.name,
    )
    moment = now or datetime.now(UTC)
    pruned = []
    for folder in runs[: max(len(runs) - keep, 0)]:
        if not (folder / _REPORT).is_file() and moment - _last_change(folder) < unfinished_grace:
            continue
        shutil.rmtree(folder)
        pruned.append(folder)
    return pruned


def _real_dir(path: Path) -> bool:
    """A directory, not a symlink to one (pruning never follows links out of ``runs_dir``)."""
    return path.is_dir() and not path.is_symlink()


def _last_change(folder: Path) -> datetime:
    """When the folder or a file directly in it last changed."""
    times = [folder.stat().st_mtime]
    times += [entry.stat().st_mtime for entry in folder.iterdir() if entry.is_file()]
    return datetime.fromtimestamp(max(times), UTC)
