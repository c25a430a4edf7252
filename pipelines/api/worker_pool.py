"""``deliver``'s worker pool: a producer fills a bounded queue, ``concurrency`` workers submit from it.

An abort, an error in the source or in ``on_result``, or ``stop`` ends a run in order: no new rows,
requests in flight finish and are reported, then the first error is re-raised. With
``isolate_accounts`` a 403 (``AccountRefused``) is no abort: that account's rows fail with
``http_403`` (reported as results) and the other accounts' rows go on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable

from pipelines.api.account_refusals import refused_result
from pipelines.api.completions import Result, Submission
from pipelines.api.halt import Halt, Halted
from pipelines.api.retry_policy import Unreachable
from pipelines.core.errors import AccountRefused

__all__ = ["WorkerPool"]

logger = logging.getLogger(__name__)


class WorkerPool:
    """One ``deliver`` run: ``submit`` each row with ``concurrency`` workers, report as each ends.

    Rows left without a result are not reported to ``on_result`` (the caller marks them pending);
    ``on_unanswered`` gets those among them that may have reached the API all the same.
    """

    def __init__(
        self,
        submit: Callable[[Submission, Halt], Awaitable[Result]],
        concurrency: int,
        on_result: Callable[[Result], None],
        *,
        stop: asyncio.Event | None = None,
        on_unanswered: Callable[[Submission], None] | None = None,
        isolate_accounts: bool = False,
    ) -> None:
        self._submit = submit
        self._isolate_accounts = isolate_accounts
        self._concurrency = concurrency
        self._on_result = on_result
        self._stop = stop
        self._on_unanswered = on_unanswered
        self._halt = Halt()
        self._queue: asyncio.Queue[Submission | None] = asyncio.Queue(maxsize=2 * concurrency)
        self._errors: list[Exception] = []
        self._producer: asyncio.Task[None] | None = None

    async def run(self, submissions: AsyncIterable[Submission] | Iterable[Submission]) -> None:
        """Deliver ``submissions`` until done or halted; re-raise the first error, if any."""
        producer = self._producer = asyncio.create_task(self._produce(submissions))
        stop = self._stop
        watcher = asyncio.create_task(stop.wait()) if stop is not None else None
        if watcher is not None:
            watcher.add_done_callback(lambda task: None if task.cancelled() else self._halt_all())
        try:
            await asyncio.gather(*(self._work() for _ in range(self._concurrency)))
        finally:
            for task in (producer, watcher):
                if task is not None and not task.done():
                    task.cancel()
            await asyncio.gather(producer, *([watcher] if watcher else []), return_exceptions=True)
        if self._errors:
            if len(self._errors) > 1:
                logger.warning("%d more workers stopped with errors", len(self._errors) - 1)
            raise self._errors[0]

    def _halt_all(self) -> None:
        """Take no new rows: stop the producer, drop queued rows, send every worker home."""
        if self._halt.is_set:
            return
        self._halt.set()
        if self._producer is not None and asyncio.current_task() is not self._producer:
            self._producer.cancel()
        while not self._queue.empty():  # rows queued but never taken stay pending
            self._queue.get_nowait()
        for _ in range(self._concurrency):
            self._queue.put_nowait(None)

    def _stopping(self) -> bool:
        """Whether the run is halting (a set ``stop`` halts it now)."""
        if self._stop is not None and self._stop.is_set():  # before the watcher's callback has run
            self._halt_all()
        return self._halt.is_set

    def _fail(self, exc: Exception) -> None:
        """Keep ``exc`` to re-raise and halt the run."""
        self._errors.append(exc)
        self._halt_all()

    def _in_doubt(self, submission: Submission) -> None:
        """Report a row left without a result that may have reached the API."""
        if self._on_unanswered is not None:
            self._on_unanswered(submission)

    async def _produce(self, submissions: AsyncIterable[Submission] | Iterable[Submission]) -> None:
        """Queue every submission, then one end marker per worker; a source error halts."""
        try:
            if isinstance(submissions, AsyncIterable):
                async for submission in submissions:
                    await self._queue.put(submission)
            else:
                for submission in submissions:
                    await self._queue.put(submission)
        except Exception as exc:
            self._fail(exc)
            return
        for _ in range(self._concurrency):
            await self._queue.put(None)

    async def _work(self) -> None:
        """Submit queued rows until the end marker or a halt; an error halts the run."""
        while (submission := await self._queue.get()) is not None and not self._stopping():
            try:
                result = await self._submit(submission, self._halt)
            except Halted as halted:
                if halted.maybe_sent:
                    self._in_doubt(submission)
                return
            except AccountRefused as refused:
                if not self._isolate_accounts:
                    self._fail(refused)
                    return
                result = refused_result(submission, refused)  # its account only: go on
            except Exception as exc:
                if isinstance(exc, Unreachable):
                    self._in_doubt(submission)
                self._fail(exc)
                return
            try:
                self._on_result(result)
            except Exception as exc:
                self._fail(exc)
                return
