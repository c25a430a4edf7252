"""Watching a delivering run: a progress line every ~30 s, the reconciliation and abort lines, and
the rows handed to the client grouped into slices (task runs on a Prefect timeline).

It wraps the sink's submissions and results; it never sends, waits on or reorders a row, so the
client's one pool of workers and its one rate limiter set the pace as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from pipelines.api.client_stats import ClientStats
from pipelines.api.completions import Result, Submission
from pipelines.core.outcomes import OUTCOMES, RowOutcome
from pipelines.run.delivery_sink import DeliverySink
from pipelines.run.delivery_slices import SliceTracker
from pipelines.run.run_log import RunHooks

__all__ = ["DeliveryWatch"]

PAUSES_NAMED = 5  # a progress line lists this many Retry-After values, then "…"


@dataclass(frozen=True)
class _Mark:
    """Counters at one progress line, for the rates of the next."""

    at: float
    settled: int
    requests: int
    pauses: int
    retries: int


class DeliveryWatch:
    """Progress lines and delivery slices of one delivering run (see the module docstring)."""

    def __init__(
        self,
        hooks: RunHooks,
        sink: DeliverySink,
        stats: ClientStats,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = hooks.log
        self.interval = hooks.progress_seconds
        self.sink, self.report, self.stats = sink, sink.report, stats
        self.slices = (
            SliceTracker(hooks.watch_slice, hooks.slice_rows) if hooks.watch_slice else None
        )
        self._clock = clock
        self._last = self._mark()

    async def submissions(self) -> AsyncIterator[Submission]:
        """The sink's submissions, each counted into its slice as the client takes it."""
        async for submission in self.sink.submissions():
            row = self.sink.pending.get(submission.key)
            if self.slices is not None and row is not None:
                number = row.chunk.batch.rows[row.index].as_py()
                self.slices.taken(submission.key, row.chunk.source.name, number)
            yield submission

    def on_result(self, result: Result) -> None:
        """Record the result in the sink, then in its slice."""
        self.sink.on_result(result)
        if self.slices is not None:
            kept = result.outcome in (RowOutcome.DELIVERED, RowOutcome.DUPLICATE)
            self.slices.settled(result.key, result.outcome if kept else RowOutcome.FAILED)

    async def reconcile(self) -> None:
        """The sink's reconciliation of keys in doubt, with one line saying what it found."""
        doubtful = len(self.sink.doubtful)
        reasons = self.report.reasons
        before = reasons["reconciled"], reasons["in_doubt_unverifiable"]
        await self.sink.reconcile()
        if not doubtful or self.sink.reconciler is None:
            return
        found = reasons["reconciled"] - before[0]
        unverifiable = reasons["in_doubt_unverifiable"] - before[1]
        self.log.info(
            "reconciliation: %s key(s) in doubt looked up at the API: %s already there "
            "(delivered, reconciled), %s to send again, %s unverifiable (left pending)",
            f"{doubtful:,}",
            f"{found:,}",
            f"{max(doubtful - found - unverifiable, 0):,}",
            f"{unverifiable:,}",
        )

    def aborting(self, reason: str) -> None:
        """The run must stop: say why, before the requests in flight have finished."""
        self.log.warning(
            "stopping the run: %s; requests in flight finish, unsent rows stay pending", reason
        )

    @contextlib.asynccontextmanager
    async def progress(self) -> AsyncIterator[None]:
        """While the block runs, log a progress line every ``progress_seconds``."""
        ticker = asyncio.create_task(self._tick())
        try:
            yield
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker

    async def close(self) -> None:
        """The run is over: end every slice (rows without an outcome are pending)."""
        if self.slices is not None:
            await self.slices.close()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.log.info("%s", self.progress_line())

    def progress_line(self) -> str:
        """Rows with an outcome; since the last line: rows/s, requests, 429 pauses, retries."""
        mark, last = self._mark(), self._last
        self._last = mark
        seconds = max(mark.at - last.at, 1e-9)
        outcomes = self.report.outcomes
        counts = ", ".join(f"{name} {outcomes[name]:,}" for name in OUTCOMES if outcomes[name])
        pauses = self.stats.pauses[last.pauses : mark.pauses]
        named = ", ".join(f"{p:g}" for p in pauses[:PAUSES_NAMED])
        more = ", …" if len(pauses) > PAUSES_NAMED else ""
        paused = (
            f"{len(pauses):,} pause(s) for 429/408 (Retry-After {named}{more} s)"
            if pauses
            else "no 429 pause"
        )
        return (
            f"delivering: {mark.settled:,} of {self.report.rows_read:,} rows read have an "
            f"outcome{f' ({counts})' if counts else ''} · last {seconds:,.1f} s: "
            f"{(mark.settled - last.settled) / seconds:,.1f} rows/s, "
            f"{mark.requests - last.requests:,} requests, {paused}, "
            f"{mark.retries - last.retries:,} retries · {mark.requests:,} requests so far"
        )

    def _mark(self) -> _Mark:
        return _Mark(
            self._clock(),
            sum(self.report.outcomes.values()),
            self.stats.sent,
            len(self.stats.pauses),
            self.stats.retries,
        )
