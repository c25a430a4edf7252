"""A backfill's progress in the Prefect UI: a progress artifact of the bytes of its files whose run
has ended ÷ the bytes of all its files, updated at most every 5 s (and at the end)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from uuid import UUID

from prefect.artifacts import acreate_progress_artifact, aupdate_progress_artifact

from pipelines.output.report import RunReport

__all__ = ["BytesProgress"]

UPDATE_SECONDS = 5.0


class BytesProgress:
    """Percent of the job's bytes done, published as the artifact ``key``."""

    def __init__(self, files: list[Path], key: str) -> None:
        self.key = key
        self.total = sum(path.stat().st_size for path in files) or 1
        self.done = 0
        self._published = 0.0
        self._artifact: UUID | None = None
        self._updates: list[asyncio.Task[object]] = []

    async def start(self, description: str) -> None:
        """Publish the artifact at 0 %."""
        self._artifact = await acreate_progress_artifact(  # type: ignore[misc]
            progress=0.0, key=self.key, description=description
        )

    def file_done(self, path: Path, report: RunReport) -> None:
        """A file's run ended: count its bytes; publish if 5 s passed or the job is done."""
        del report  # the bytes count, whatever the run's outcome
        self.done += path.stat().st_size
        if self._artifact is None:
            return
        now = time.monotonic()
        if now - self._published >= UPDATE_SECONDS or self.done >= self.total:
            self._published = now
            update = aupdate_progress_artifact(self._artifact, self.percent)
            self._updates.append(asyncio.ensure_future(update))

    @property
    def percent(self) -> float:
        """Bytes done as a percentage of all bytes."""
        return round(100.0 * min(self.done, self.total) / self.total, 1)

    async def finish(self) -> None:
        """Wait for the updates in flight, then publish the final figure."""
        await asyncio.gather(*self._updates)
        if self._artifact is not None:
            await aupdate_progress_artifact(self._artifact, self.percent)
