"""A delivering run: valid rows checked against the ledger, sent through the client (DESIGN §7).

Reading and checking chunks runs in a worker thread (Arrow releases the GIL) while the client's
fixed pool of workers sends the previous chunk's rows, so the pipe never drains at a chunk
boundary. Every row ends in exactly one outcome: rows accepted but never sent (the run stopped)
are ``pending``.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from pipelines.api.client import StackOneClient
from pipelines.api.user_lookup import UserResolver
from pipelines.core.outcomes import RunMode
from pipelines.output.deadletter import DeadLetterWriter
from pipelines.output.report import RunReport
from pipelines.output.run_folder import new_run_id, run_folder
from pipelines.run.checked_ahead import DEFAULT_AHEAD, checked_ahead
from pipelines.run.chunks import Chunk, check_chunk, iter_chunks
from pipelines.run.crash_recording import Redact, record_errors
from pipelines.run.delivery_prepare import PreparedRows, prepare_rows
from pipelines.run.delivery_sink import MARK_BATCH, DeliverySink
from pipelines.run.delivery_watch import DeliveryWatch
from pipelines.run.leases import MIN_LEASE_SECONDS, Lease, renewing
from pipelines.run.plan import RunPlan
from pipelines.run.reconcile import Reconciler
from pipelines.run.repeats import RepeatTracker
from pipelines.run.run_log import RunHooks, file_logger
from pipelines.run.settle import prime_repeats, settle_chunk
from pipelines.state.ledger import Ledger
from transforms.errors import LmsSyncError
from transforms.validation import CheckedRows

Check = Callable[[Chunk, RunPlan, datetime], CheckedRows]
Checked = tuple[CheckedRows, PreparedRows]


async def deliver_run(
    plan: RunPlan,
    client: StackOneClient,
    ledger: Ledger,
    *,
    out: Path | None,
    target: str,
    stop: asyncio.Event | None = None,
    check: Check = check_chunk,
    resolver: UserResolver | None = None,
    on_report: Callable[[RunReport], None] | None = None,
    resend_in_doubt: bool = False,
    redact: Redact | None = None,
    hooks: RunHooks | None = None,
    lease_seconds: float = MIN_LEASE_SECONDS,
) -> RunReport:
    """Deliver every valid row of the plan's sources; the report is written however it ends.

    Runs on one target go side by side: each claims the keys it sends (with a lease renewed
    while it runs); a key another live run has claimed is pending here (``claimed_elsewhere``).
    """
    started = datetime.now(UTC)
    run_id = new_run_id(started)
    stop = stop or asyncio.Event()
    report = RunReport(run_id, RunMode.DELIVER, target, [str(p) for p in plan.sources], started)
    report.folder = run_folder(out, run_id)
    deadletter = DeadLetterWriter(report.folder, plan.deadletter_schema)
    ledger.begin(run_id)
    if on_report is not None:
        on_report(report)  # a progress display reads it while the run goes on
    sink = DeliverySink(
        ledger,
        report,
        deadletter,
        run_id,
        mark_batch=min(MARK_BATCH, client.concurrency),
        resolver=resolver if plan.spec.user.resolve_by else None,
        resolve_by=plan.spec.user.resolve_by,
        reconciler=Reconciler(client, ledger, client.concurrency),
        resend_in_doubt=resend_in_doubt,
        lease=Lease(lease_seconds),
    )
    watch = DeliveryWatch(hooks or RunHooks(), sink, client.stats)
    try:
        with record_errors(report, redact):  # a crash is recorded, not raised (exit 3)
            async with renewing(ledger, sink.lease):
                await _send_all(plan, client, watch, check, stop, started)
    finally:
        stats = client.stats
        report.requests_sent, report.status_429, report.retries = (
            stats.sent,
            stats.status_429,
            stats.retries,
        )
        _close(report, deadletter, ledger, redact)
    return report


def _close(
    report: RunReport, deadletter: DeadLetterWriter, ledger: Ledger, redact: Redact | None
) -> None:
    """Close the dead-letter files and end the ledger's run, then write report.json: closing
    fails too on a full disk, a crash (exit 3) like any other, the first error named."""
    with record_errors(report, redact):
        try:
            deadletter.close()
        finally:
            ledger.end()
    report.finish(deadletter.paths())


async def _send_all(
    plan: RunPlan,
    client: StackOneClient,
    watch: DeliveryWatch,
    check: Check,
    stop: asyncio.Event,
    started: datetime,
) -> None:
    """Read and check chunks in one task while the client's workers send; settle what is left."""
    sink, report = watch.sink, watch.report
    report.accounts = plan.account_counts()  # rows per account, when a column names it
    producer = asyncio.create_task(_produce(plan, watch, check, stop, started))
    try:
        async with watch.progress():  # a progress line every ~30 s while rows are sent
            await client.deliver(  # a 403 fails its account's rows (http_403); the others go on
                watch.submissions(),
                watch.on_result,
                stop=stop,
                on_unanswered=sink.on_unanswered,
                isolate_accounts=True,
            )
    except LmsSyncError as exc:
        report.aborted = str(exc)
        watch.aborting(report.aborted)
        stop.set()
    finally:
        if not producer.done():
            stop.set()
            sink.arrived.set()
            sink.drained.set()
        try:
            await producer
        finally:
            if stop.is_set() and report.aborted is None:
                report.aborted = "interrupted"
            try:
                sink.flush()  # may fail (a full disk): the run still settles and closes
            finally:
                sink.settle_unsent()
                await watch.close()  # every delivery slice ends (rows without an answer pending)
                report.refused_accounts = dict(sorted(client.refused.messages.items()))


async def _produce(
    plan: RunPlan, watch: DeliveryWatch, check: Check, stop: asyncio.Event, started: datetime
) -> None:
    """Feed the sink chunk by chunk, never more than a few chunks ahead of what has been sent."""
    sink, report, tracker = watch.sink, watch.report, RepeatTracker(plan.spec.repeats)
    ledger, loop = sink.ledger, asyncio.get_running_loop()
    # Loading a big ledger's keys takes seconds: in a thread, while the first chunks are checked.
    preloading = ThreadPoolExecutor(1, thread_name_prefix="preload")
    preloaded = preloading.submit(ledger.preload)
    # One thread reads chunks; the plain check, body hashes and ledger look-ups run ahead on
    # threads (``checked_ahead``); a Prefect task checks in the reading thread, in its context.
    reading = ThreadPoolExecutor(1, thread_name_prefix="read-check")
    context = contextvars.copy_context()
    upcoming: asyncio.Future[tuple[Chunk, Checked] | None] | None = None

    def checked_and_prepared(chunk: Chunk) -> Checked:
        checked = check(chunk, plan, started)
        return checked, prepare_rows(ledger, checked, preloaded)

    ahead = DEFAULT_AHEAD if check is check_chunk else 0
    chunks = iter_chunks(plan, file_logger(watch.log, plan))
    pairs = checked_ahead(chunks, checked_and_prepared, ahead)  # starts at the first next()
    following = functools.partial(context.run, next, pairs, None)
    try:
        if plan.spec.repeats == "last":
            await asyncio.to_thread(prime_repeats, plan, tracker, started)
        upcoming = loop.run_in_executor(reading, following)
        while not stop.is_set():
            item = await upcoming
            if item is None:
                report.classified_at = datetime.now(UTC)  # the rest is sending
                break
            upcoming = loop.run_in_executor(reading, following)  # the next while this settles
            chunk, (checked, prepared) = item
            tracker.place(prepared.slots, ledger.delivered_keys)
            fresh = settle_chunk(chunk, checked, tracker, report, sink.deadletter)
            sink.accept(chunk, checked, fresh, prepared)
            if sink.resolver is not None:
                await sink.resolve_users()
            await watch.reconcile()  # keys in doubt: asked at the API before any is resent
            while len(sink.backlog) > plan.batch_rows and not stop.is_set():
                sink.drained.clear()
                await sink.drained.wait()
    except BaseException as exc:  # e.g. a source that cannot be read on
        report.aborted = report.aborted or str(exc) or type(exc).__name__
        stop.set()  # the client stops in order; the error is raised once results are kept
        raise
    finally:
        # A stopped run waits for its threads' work: the chunk being read, the checks ahead.
        for work in (asyncio.wrap_future(preloaded), upcoming):
            if work is not None:
                await asyncio.wait([work])
                if not work.cancelled():
                    work.exception()  # seen: an error of its own was raised above, if any
        await loop.run_in_executor(reading, pairs.close)  # its checks ahead end too
        reading.shutdown(wait=False)
        preloading.shutdown(wait=False)
        sink.closed = True
        sink.arrived.set()
