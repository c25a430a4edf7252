"""A dry run: every row converted and validated, valid ones written to payloads.jsonl, none sent."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.core.object_urls import source_label
from pipelines.core.outcomes import SEND_STATUSES, RunMode
from pipelines.output.deadletter import DeadLetterWriter
from pipelines.output.payloads import PayloadWriter, payload_lines
from pipelines.output.report import RunReport
from pipelines.output.run_folder import new_run_id, run_folder
from pipelines.run.chunks import Chunk, check_chunk, iter_chunks
from pipelines.run.crash_recording import Redact, record_errors
from pipelines.run.estimate import DEFAULT_CONCURRENCY, cost_estimate
from pipelines.run.plan import RunPlan
from pipelines.run.repeats import RepeatTracker
from pipelines.run.run_log import Log, file_logger
from pipelines.run.settle import prime_repeats, run_chunks
from pipelines.state.ledger import Ledger
from transforms.keys import blake2b_128_hex
from transforms.masks import count_true
from transforms.validation import VALID, CheckedRows

ALREADY_THERE = ("delivered", "duplicate")


@dataclass(frozen=True)
class PayloadLines:
    """A chunk prepared on its checking thread: each valid row's payload line (null for the
    others) and, when a ledger is read, each body's hash (null where no body)."""

    lines: pa.Array
    body_hashes: pa.Array | None


class PayloadSink:
    """Valid rows of a dry run become would_send lines of payloads.jsonl.

    With a ledger, rows an earlier run delivered are ``duplicate`` (as a real run would count
    them) and only the rest would be sent; the ledger is read, never written.
    """

    def __init__(
        self,
        writer: PayloadWriter,
        report: RunReport,
        ledger: Ledger | None,
        collect_users: bool = False,
    ) -> None:
        self.writer = writer
        self.report = report
        self.ledger = ledger
        self.collect_users = collect_users
        self.users: dict[str, set[str]] = {}  # distinct users per account (for --check-remote)

    def prepare(self, chunk: Chunk, checked: CheckedRows) -> PayloadLines:
        """The payload lines and, with a ledger, body hashes; pure, on a checking thread."""
        lines = payload_lines(
            checked.account,
            checked.user,
            checked.body,
            checked.key,
            source_label(chunk.source),
            chunk.batch.rows,
        )
        hashes = None if self.ledger is None else blake2b_128_hex(checked.body)
        return PayloadLines(lines, hashes)

    def accept(
        self, chunk: Chunk, checked: CheckedRows, fresh: pa.Array, prepared: PayloadLines
    ) -> None:
        """Write the lines of the fresh rows not yet delivered; each is would_send once its line
        is in payloads.jsonl."""
        keep = np.asarray(fresh.to_numpy(zero_copy_only=False), np.bool_)
        if prepared.body_hashes is not None and keep.any():
            keep[np.flatnonzero(keep)] = self._not_yet_delivered(
                checked, fresh, prepared.body_hashes
            )
        kept = pa.array(keep)
        accounts = pc.filter(checked.account, kept)
        if self.collect_users:
            pairs = pa.table({"account": accounts, "user": pc.filter(checked.user, kept)})
            pairs = pairs.group_by(["account", "user"]).aggregate([])
            for account, user in zip(
                pairs.column("account").to_pylist(), pairs.column("user").to_pylist(), strict=True
            ):
                self.users.setdefault(account, set()).add(user)
        # Counted once their lines are in payloads.jsonl: those a failed write left out are pending.
        self.writer.write(prepared.lines, keep, functools.partial(self._would_send, accounts))

    def _would_send(self, accounts: pa.Array, lines: int) -> None:
        """The first ``lines`` kept rows (``accounts``: of every kept row) are in the file."""
        self.report.add("would_send", lines, accounts=accounts.slice(0, lines))

    def _not_yet_delivered(
        self, checked: CheckedRows, fresh: pa.Array, body_hashes: pa.Array
    ) -> npt.NDArray[np.bool_]:
        """Of the fresh rows, those the ledger has not seen delivered (the others counted)."""
        assert self.ledger is not None
        keys = pc.filter(checked.key, fresh)
        state = self.ledger.classify(keys, pc.filter(body_hashes, fresh))
        there = pc.is_in(state, value_set=pa.array(ALREADY_THERE))
        changed = pc.equal(state, "changed_after_delivery")
        accounts = pc.filter(checked.account, fresh)
        for mask, reason in ((there, "already_delivered"), (changed, "changed_after_delivery")):
            self.report.add("duplicate", count_true(mask), reason, pc.filter(accounts, mask))
        return np.asarray(pc.invert(pc.or_(there, changed)).to_numpy(zero_copy_only=False))


def count_would_send(plan: RunPlan, ledger: Ledger | None) -> int:
    """Requests a real run of ``plan`` would send (valid, first of their key, not delivered)."""
    now = datetime.now(UTC)
    tracker = RepeatTracker(plan.spec.repeats)
    if plan.spec.repeats == "last":
        prime_repeats(plan, tracker, now)
    total = 0
    for chunk in iter_chunks(plan):
        checked = check_chunk(chunk, plan, now)
        fresh = pc.and_not(
            pc.equal(checked.status, VALID), tracker.repeats(checked.key, chunk.ordinals)
        )
        if ledger is None:
            total += count_true(fresh)
            continue
        keys = pc.filter(checked.key, fresh)
        state = ledger.classify(keys, blake2b_128_hex(pc.filter(checked.body, fresh)))
        total += count_true(pc.is_in(state, value_set=pa.array(SEND_STATUSES, pa.string())))
    return total


def dry_run(
    plan: RunPlan,
    *,
    out: Path | None,
    target: str,
    check: Callable[[Chunk, RunPlan, datetime], CheckedRows] = check_chunk,
    ledger: Ledger | None = None,
    rate_limit: tuple[int, float] = (950, 60.0),
    concurrency: int = DEFAULT_CONCURRENCY,
    on_report: Callable[[RunReport], None] | None = None,
    collect_users: bool = False,
    redact: Redact | None = None,
    log: Log | None = None,
) -> RunReport:
    """Run every chunk through read → check → settle and write the run folder's three outputs.

    An unexpected error ends the run as crashed (``redact`` cleans its text of the API key);
    ``log`` gets a line as each file starts.
    """
    started = datetime.now(UTC)
    run_id = new_run_id(started)
    folder = run_folder(out, run_id)
    report = RunReport(run_id, RunMode.DRY_RUN, target, [str(p) for p in plan.sources], started)
    report.folder = folder
    report.accounts = plan.account_counts()
    if on_report is not None:
        on_report(report)  # a progress display reads it while the run goes on
    deadletter = DeadLetterWriter(folder, plan.deadletter_schema)
    payloads = PayloadWriter(folder)
    sink = PayloadSink(payloads, report, ledger, collect_users)
    try:
        with record_errors(report, redact):  # a crash is recorded, not raised (exit 3)
            try:
                on_file = file_logger(log, plan) if log is not None else None
                run_chunks(plan, started, report, deadletter, sink, check, on_file)
            finally:
                try:
                    payloads.close()  # may raise a write that failed on its thread
                finally:
                    deadletter.close()
    finally:
        if not report.aborted:  # a run cut short has no cost worth estimating
            report.estimate = cost_estimate(
                report.outcomes["would_send"], rate_limit, concurrency=concurrency
            )
        report.finish(deadletter.paths())
    report.distinct_users = sink.users
    return report
