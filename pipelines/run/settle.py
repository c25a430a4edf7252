"""Settling a checked chunk: every row invalid, skipped, a repeat, or handed to the sink."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.core.object_urls import source_label
from pipelines.core.outcomes import Stage
from pipelines.output.deadletter import DeadLetterWriter, with_reasons
from pipelines.output.report import RunReport
from pipelines.run.checked_ahead import DEFAULT_AHEAD, checked_ahead
from pipelines.run.chunks import Chunk, check_chunk, iter_chunks
from pipelines.run.plan import RunPlan
from pipelines.run.read_ahead import read_ahead
from pipelines.run.repeats import RepeatTracker
from pipelines.source.source_breaks import INCOMPLETE_SOURCE
from transforms.masks import count_true
from transforms.validation import INVALID, SKIPPED, VALID, CheckedRows

Prepared = TypeVar("Prepared")


class PreparedSink(Protocol[Prepared]):
    """Where a dry run's valid, first-seen rows go (payloads.jsonl): ``prepare`` is pure and runs
    on the checking thread, and takes from the bodies all the sink needs (they are dropped
    then); ``accept`` gets its result with the rows to keep, in chunk order."""

    def prepare(self, chunk: Chunk, checked: CheckedRows) -> Prepared: ...

    def accept(
        self, chunk: Chunk, checked: CheckedRows, fresh: pa.Array, prepared: Prepared
    ) -> None: ...


def settle_chunk(
    chunk: Chunk,
    checked: CheckedRows,
    tracker: RepeatTracker,
    report: RunReport,
    deadletter: DeadLetterWriter,
) -> pa.Array:
    """Give every row of the chunk its outcome (invalid, skipped, duplicate_in_file) but the fresh
    ones: valid and first of their key, for the caller's sink (the mask returned)."""
    n = chunk.batch.table.num_rows
    report.read(n, checked.account)
    skipped = pc.equal(checked.status, SKIPPED)
    report.add("skipped", count_true(skipped), accounts=pc.filter(checked.account, skipped))
    report.warnings.update(
        {f"deprecated_field:{k}": v for k, v in checked.deprecated_uses.items() if v}
    )
    if chunk.batch.source_break:  # the file broke off: a nightly job must try it again
        report.warnings[f"{INCOMPLETE_SOURCE}:{source_label(chunk.source)}"] += 1

    repeat = tracker.repeats(checked.key, chunk.ordinals)
    valid = pc.equal(checked.status, VALID)
    repeated = pc.and_(valid, repeat)
    report.add(
        "duplicate",
        count_true(repeated),
        "duplicate_in_file",
        accounts=pc.filter(checked.account, repeated),
    )
    # Written last: a crash writing it (disk full) leaves the rows counted above counted, and
    # the invalid ones counted once in deadletter.parquet (a crash writing the CSV keeps them).
    invalid = pc.equal(checked.status, INVALID)
    deadletter.write(
        invalid_rows(chunk, checked, invalid),
        landed=lambda: _count(report, "invalid", checked.error_code, checked.account, invalid),
    )
    return pc.and_not(valid, repeat)


def fresh_rows(chunk: Chunk, checked: CheckedRows, fresh: pa.Array) -> pa.Table:
    """The fresh rows' account, user, key, body, row number and index in the chunk."""
    n = chunk.batch.table.num_rows
    return pa.table(
        {
            "account": checked.account,
            "user": checked.user,
            "key": checked.key,
            "body": checked.body,
            "row": chunk.batch.rows,
            "index": pa.array(np.arange(n, dtype=np.int64)),
        }
    ).filter(fresh)


def invalid_rows(chunk: Chunk, checked: CheckedRows, mask: pa.Array) -> pa.Table:
    """The source columns of the masked rows plus the ``_dl_*`` columns (stage read or validate)."""
    code = pc.filter(checked.error_code, mask)
    return with_reasons(
        chunk.batch.table.filter(mask),
        source=chunk.source,
        rows=pc.filter(chunk.batch.rows, mask),
        stage=pc.if_else(pc.equal(code, "malformed_row"), Stage.READ.value, Stage.VALIDATE.value),
        code=code,
        message=pc.filter(checked.error_message, mask),
        field=pc.filter(checked.error_field, mask),
        errors=pc.filter(checked.errors, mask),
        attempts=0,
    )


def prime_repeats(plan: RunPlan, tracker: RepeatTracker, now: datetime) -> None:
    """Pre-pass for ``repeats: last``: learn the last row of every key."""
    for chunk in iter_chunks(plan):
        checked = check_chunk(chunk, plan, now)
        tracker.prime(checked.key, chunk.ordinals)


def run_chunks(
    plan: RunPlan,
    now: datetime,
    report: RunReport,
    deadletter: DeadLetterWriter,
    sink: PreparedSink[Prepared],
    check: Callable[[Chunk, RunPlan, datetime], CheckedRows] = check_chunk,
    on_file: Callable[[int, Path, int], None] | None = None,
) -> None:
    """Read → check → settle every chunk of every source, in order (``on_file``: each file)."""
    tracker = RepeatTracker(plan.spec.repeats)
    if plan.spec.repeats == "last":
        prime_repeats(plan, tracker, now)

    def checked_and_prepared(chunk: Chunk) -> tuple[CheckedRows, Prepared]:
        checked = check(chunk, plan, now)
        prepared = sink.prepare(chunk, checked)
        # The bodies are in the prepared lines now: chunks waiting to be settled hold no copy.
        return replace(checked, body=pa.nulls(len(checked.body), checked.body.type)), prepared

    # The plain check is pure: run it ahead on the spare cores. Any other (a Prefect task) runs
    # in this thread, where its run context is.
    ahead = DEFAULT_AHEAD if check is check_chunk else 0
    chunks = iter_chunks(plan, on_file)
    if ahead:
        chunks = read_ahead(chunks)
    for chunk, (checked, prepared) in checked_ahead(chunks, checked_and_prepared, ahead):
        fresh = settle_chunk(chunk, checked, tracker, report, deadletter)
        sink.accept(chunk, checked, fresh, prepared)


def _count(
    report: RunReport, outcome: str, codes: pa.Array, accounts: pa.Array, mask: pa.Array
) -> None:
    """Count the masked rows in ``outcome``, by code and by account."""
    selected = pc.filter(codes, mask)
    if len(selected) == 0:
        return
    for code in pc.unique(selected).to_pylist():
        same = pc.is_null(codes) if code is None else pc.fill_null(pc.equal(codes, code), False)
        rows = pc.and_(mask, same)
        report.add(outcome, count_true(rows), code, accounts=pc.filter(accounts, rows))
