"""What a run tells the person watching it: start, each file, reconciliation, aborts, the outcome.

Lines go to a ``logging`` logger: ``pipelines.run`` on the plain path, Prefect's run logger under a
flow (orchestration hands it down in ``RunHooks``). They carry counts, file names and the target,
never a row's data or the API key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.core.outcomes import OUTCOMES
from pipelines.core.settings import RunOptions, Settings
from pipelines.output.report import RunReport
from pipelines.run.delivery_slices import SLICE_ROWS, WatchSlice
from pipelines.run.plan import RunPlan

__all__ = [
    "PROGRESS_SECONDS",
    "RUN_LOGGER",
    "Log",
    "RunHooks",
    "deadletter_line",
    "file_logger",
    "log_outcome",
    "log_start",
    "outcome_line",
]

RUN_LOGGER = "pipelines.run"
PROGRESS_SECONDS = 30.0  # a delivering run logs its progress this often
SOURCES_NAMED = 3  # the start line names this many sources, then "+N more"
REASONS_NAMED = 8  # a dead-letter line names this many error codes, then "…"

Log = logging.Logger | logging.LoggerAdapter[Any]


def _run_logger() -> Log:
    return logging.getLogger(RUN_LOGGER)


@dataclass(frozen=True)
class RunHooks:
    """How a run is watched: where its log lines go, how often delivery reports progress, and
    what watches each delivery slice (under a flow: a Prefect task run on the timeline)."""

    log: Log = field(default_factory=_run_logger)
    progress_seconds: float = PROGRESS_SECONDS
    slice_rows: int = SLICE_ROWS
    watch_slice: WatchSlice | None = None


def log_start(log: Log, plan: RunPlan, settings: Settings, options: RunOptions) -> None:
    """The first line: mode, sources, mapping, target, rate limit and workers."""
    mode = "dry run" if options.dry_run else "delivery"
    names = [path.name for path in plan.sources[:SOURCES_NAMED]]
    more = len(plan.sources) - len(names)
    size = sum(_size(path) for path in plan.sources)
    log.info(
        "%s of %d source(s) (%s%s, %s) · mapping %s · target %s · rate limit %s · %d workers",
        mode,
        len(plan.sources),
        ", ".join(names),
        f" +{more} more" if more else "",
        _bytes(size),
        plan.mapping_path.name if plan.mapping_path else "(inline)",
        settings.target,
        settings.rate_limit,
        settings.concurrency,
    )


def file_logger(log: Log, plan: RunPlan) -> Callable[[int, Path, int], None]:
    """What ``iter_chunks`` calls as each file starts: one line with the rows read so far."""

    def started(index: int, path: Path, rows_before: int) -> None:
        so_far = f" · {rows_before:,} rows read so far" if index else ""
        log.info(
            "file %d of %d: %s (%s)%s",
            index + 1,
            len(plan.sources),
            path.name,
            _bytes(_size(path)),
            so_far,
        )

    return started


def deadletter_line(report: RunReport) -> str | None:
    """``8 of 24 rows dead-lettered: invalid_timestamp 2, …`` (None when there are none)."""
    dead = report.outcomes.get("invalid", 0) + report.outcomes.get("failed", 0)
    if not dead:
        return None
    reasons = report.deadletter_reasons.most_common()
    named = ", ".join(f"{code} {count:,}" for code, count in reasons[:REASONS_NAMED])
    rest = ", …" if len(reasons) > REASONS_NAMED else ""
    return f"{dead:,} of {report.rows_read:,} rows dead-lettered: {named}{rest}"


def outcome_line(report: RunReport) -> str:
    """The final line: rows read, outcomes, requests, dead-letters and where the run folder is."""
    counts = ", ".join(
        f"{name} {report.outcomes[name]:,}" for name in OUTCOMES if report.outcomes[name]
    )
    parts = [
        f"{report.mode.replace('_', ' ')} {report.run_id} {report.status}: "
        f"{report.rows_read:,} rows read in {report.seconds():,.1f} s"
        + (f" ({counts})" if counts else ""),
    ]
    if report.requests_sent:
        parts.append(
            f"{report.requests_sent:,} requests ({report.status_429:,} x 429, "
            f"{report.retries:,} retries)"
        )
    parts += [line for line in (deadletter_line(report),) if line]
    if report.aborted:
        parts.append(f"stopped early: {report.aborted}")
    parts.append(f"run folder {report.folder}")
    return " · ".join(parts)


def log_outcome(log: Log, report: RunReport) -> None:
    """The outcome line: info when the run got through, a warning or an error when it did not."""
    level = {"finished": logging.INFO, "aborted": logging.WARNING}.get(report.status, logging.ERROR)
    log.log(level, "%s", outcome_line(report))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _bytes(size: int) -> str:
    """``812 B``, ``3.1 kB``, ``48.2 MB``, ``1.3 GB``."""
    if size < 1000:
        return f"{size} B"
    value, unit = float(size) / 1000, "kB"
    for bigger in ("MB", "GB"):
        if value < 1000:
            break
        value, unit = value / 1000, bigger
    return f"{value:,.1f} {unit}"
