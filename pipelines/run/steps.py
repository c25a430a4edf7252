"""The pipeline's steps as plain functions: plan, read, check, settle. Prefect tasks wrap them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.core.outcomes import Stage
from pipelines.output.deadletter import DeadLetterWriter, union_schema, with_reasons
from pipelines.output.report import RunReport
from pipelines.run.repeats import RepeatTracker
from pipelines.source.batches import SourceBatch, iter_batches
from pipelines.source.deadletter_source import replay_batches
from pipelines.source.headers import read_header
from pipelines.source.source_files import detect_format, expand_sources
from transforms.errors import MappingError
from transforms.keys import warm_kernel
from transforms.mapping import MappingSpec, check_columns, parse_mapping
from transforms.masks import count_true
from transforms.validation import INVALID, SKIPPED, VALID, CheckedRows, check_rows

DEFAULT_BATCH_ROWS = 131_072
LARGE_INPUT_BYTES = 48 * 1024 * 1024  # ~700 k rows: from here loading the key kernel pays off


@dataclass(frozen=True)
class RunPlan:
    """Everything fixed before the first row is read: mapping, sources, dead-letter schema."""

    spec: MappingSpec
    sources: list[Path]
    deadletter_schema: pa.Schema
    account_id: str | None
    batch_rows: int = DEFAULT_BATCH_ROWS
    replay: bool = False  # sources are dead-letter files: rows keep their original file and row


@dataclass(frozen=True)
class Chunk:
    """One batch of one source, with its position in the run."""

    source: Path
    batch: SourceBatch
    first_ordinal: int  # position of the batch's first row among all rows of the run

    @property
    def ordinals(self) -> pa.Array:
        """Run-wide position of every row (used by ``repeats: last``)."""
        start = self.first_ordinal
        return pa.array(np.arange(start, start + self.batch.table.num_rows, dtype=np.int64))


class ValidRowSink(Protocol):
    """Where valid, first-seen rows go: payloads.jsonl in a dry run, the API when delivering."""

    def accept(self, chunk: Chunk, rows: pa.Table) -> None: ...


def load_mapping(path: Path, env: Mapping[str, str]) -> MappingSpec:
    """Read and parse a mapping file (MappingError on any problem)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MappingError("", f"cannot read mapping file {path}: {exc.strerror}") from None
    return parse_mapping(text, env)


def plan_run(
    patterns: list[str],
    spec: MappingSpec,
    account_id: str | None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> RunPlan:
    """Expand the sources and check the mapping against every header before any row is read."""
    sources = expand_sources(patterns)
    schemas = []
    for path in sources:
        header = _read_header(path, spec)
        check_columns(spec, header, path.name)
        schemas.append(_schema(path, header, spec))
    if spec.account is None and not account_id:
        raise MappingError(
            "account", "no account: set STACKONE_ACCOUNT_ID or add account: to the mapping"
        )
    return RunPlan(spec, sources, union_schema(schemas), account_id, batch_rows)


def iter_chunks(plan: RunPlan) -> Iterator[Chunk]:
    """Stream every source in record batches, numbering rows across the whole run."""
    if sum(path.stat().st_size for path in plan.sources) >= LARGE_INPUT_BYTES:
        # Loading the vectorised key hasher costs seconds; worth it only for big inputs.
        threading.Thread(target=warm_kernel, name="warm-key-kernel", daemon=True).start()
    ordinal = 0
    for path in plan.sources:
        for source, batch in _source_batches(path, plan):
            yield Chunk(source, batch, ordinal)
            ordinal += batch.table.num_rows


def check_chunk(chunk: Chunk, plan: RunPlan, now: datetime) -> CheckedRows:
    """Convert and validate one chunk (pure; the Prefect task of a run wraps this)."""
    return check_rows(
        chunk.batch.table, chunk.batch.read_errors, plan.spec, account_id=plan.account_id, now=now
    )


def settle_chunk(
    chunk: Chunk,
    checked: CheckedRows,
    tracker: RepeatTracker,
    report: RunReport,
    deadletter: DeadLetterWriter,
    sink: ValidRowSink,
) -> None:
    """Give every row of the chunk its outcome: invalid, skipped, duplicate_in_file or the sink."""
    n = chunk.batch.table.num_rows
    report.rows_read += n
    invalid = pc.equal(checked.status, INVALID)
    deadletter.write(invalid_rows(chunk, checked, invalid))
    _count(report, "invalid", checked.error_code, invalid)
    report.add("skipped", count_true(pc.equal(checked.status, SKIPPED)))
    report.warnings.update(
        {f"deprecated_field:{k}": v for k, v in checked.deprecated_uses.items() if v}
    )

    repeat = tracker.repeats(checked.key, chunk.ordinals)
    valid = pc.equal(checked.status, VALID)
    report.add("duplicate", count_true(pc.and_(valid, repeat)), "duplicate_in_file")
    fresh = pc.and_not(valid, repeat)
    rows = pa.table(
        {
            "account": checked.account,
            "user": checked.user,
            "key": checked.key,
            "body": checked.body,
            "row": chunk.batch.rows,
            "index": pa.array(np.arange(n, dtype=np.int64)),
        }
    ).filter(fresh)
    sink.accept(chunk, rows)


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
    sink: ValidRowSink,
    check: Callable[[Chunk, RunPlan, datetime], CheckedRows] = check_chunk,
) -> None:
    """Read → check → settle every chunk of every source, in order."""
    tracker = RepeatTracker(plan.spec.repeats)
    if plan.spec.repeats == "last":
        prime_repeats(plan, tracker, now)
    for chunk in iter_chunks(plan):
        settle_chunk(chunk, check(chunk, plan, now), tracker, report, deadletter, sink)


def _source_batches(path: Path, plan: RunPlan) -> Iterator[tuple[Path, SourceBatch]]:
    """The file's batches and the source they count for (replay: each row's original file)."""
    if plan.replay:
        return replay_batches(path, plan.batch_rows)
    source = plan.spec.source
    batches = iter_batches(
        path,
        fmt=source.format,
        delimiter=source.delimiter,
        encoding=source.encoding,
        batch_rows=plan.batch_rows,
    )
    return ((path, batch) for batch in batches)


def _read_header(path: Path, spec: MappingSpec) -> list[str]:
    source = spec.source
    return read_header(
        path, fmt=source.format, delimiter=source.delimiter, encoding=source.encoding
    )


def _schema(path: Path, header: list[str], spec: MappingSpec) -> pa.Schema:
    if detect_format(path, spec.source.format) == "parquet":
        return pq.read_schema(path)
    return pa.schema([(name, pa.string()) for name in header])



def _count(report: RunReport, outcome: str, codes: pa.Array, mask: pa.Array) -> None:
    selected = pc.filter(codes, mask)
    if len(selected) == 0:
        return
    counts = pc.value_counts(selected)
    for item in counts.to_pylist():
        report.add(outcome, item["counts"], item["values"])
