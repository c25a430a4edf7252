"""A dry run: every row converted and validated, valid ones written to payloads.jsonl, none sent."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from pipelines.deadletter import DeadLetterWriter
from pipelines.payloads import PayloadWriter, payload_lines
from pipelines.report import RunReport
from pipelines.runs import new_run_id, run_folder
from pipelines.steps import Chunk, RunPlan, check_chunk, run_chunks
from transforms.validation import CheckedRows


class PayloadSink:
    """Valid rows of a dry run become would_send lines of payloads.jsonl."""

    def __init__(self, writer: PayloadWriter, report: RunReport) -> None:
        self.writer = writer
        self.report = report

    def accept(self, chunk: Chunk, rows: pa.Table) -> None:
        """Write the rows' payload lines and count them would_send."""
        lines = payload_lines(
            rows.column("account").combine_chunks(),
            rows.column("user").combine_chunks(),
            rows.column("body").combine_chunks(),
            rows.column("key").combine_chunks(),
            str(chunk.source),
            rows.column("row").combine_chunks(),
        )
        self.writer.write(lines)
        self.report.add("would_send", rows.num_rows)


def dry_run(
    plan: RunPlan,
    *,
    out: Path | None,
    target: str,
    check: Callable[[Chunk, RunPlan, datetime], CheckedRows] = check_chunk,
) -> RunReport:
    """Run every chunk through read → check → settle and write the run folder's three outputs."""
    started = datetime.now(UTC)
    run_id = new_run_id(started)
    folder = run_folder(out, run_id)
    report = RunReport(run_id, "dry_run", target, [str(p) for p in plan.sources], started)
    report.folder = folder
    deadletter = DeadLetterWriter(folder, plan.deadletter_schema)
    payloads = PayloadWriter(folder)
    try:
        run_chunks(plan, started, report, deadletter, PayloadSink(payloads, report), check)
    finally:
        payloads.close()
        deadletter.close()
        report.finished_at = datetime.now(UTC)
        report.deadletter = {
            "csv": str(deadletter.csv_path),
            "parquet": str(deadletter.parquet_path),
        }
        report.write(folder / "report.json")
    return report
