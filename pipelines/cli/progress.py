"""A live progress line for long runs on a terminal: rows, rows/s, requests and an ETA."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from pipelines.cli.console import console
from pipelines.output.report import RunReport

REFRESH_SECONDS = 0.5


@contextlib.asynccontextmanager
async def live_progress(
    enabled: bool, rate_limit: tuple[int, float]
) -> AsyncIterator[Callable[[RunReport], None]]:
    """Yield a hook the run calls with its report; while the block runs, show its progress.

    The ETA counts the rows read but not yet settled at the rate limit (requests are the
    bottleneck of a delivering run); a dry run shows rows and rows/s only.
    """
    reports: list[RunReport] = []
    if not enabled:
        yield reports.append
        return
    per_second = rate_limit[0] / rate_limit[1]
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("starting …")
        started = time.monotonic()

        async def refresh() -> None:
            while True:
                if reports:
                    progress.update(task, description=_line(reports[0], started, per_second))
                await asyncio.sleep(REFRESH_SECONDS)

        refresher = asyncio.create_task(refresh())
        try:
            yield reports.append
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher


def _line(report: RunReport, started: float, per_second: float) -> str:
    elapsed = max(time.monotonic() - started, 1e-9)
    settled = sum(report.outcomes.values())
    text = f"{report.rows_read:,} rows read · {report.rows_read / elapsed:,.0f} rows/s"
    if report.mode == "deliver":
        waiting = max(report.rows_read - settled, 0)
        text += (
            f" · {report.outcomes.get('delivered', 0):,} delivered · {waiting:,} to send"
            f" · ETA {waiting / per_second:,.0f} s at the rate limit"
        )
    return text
