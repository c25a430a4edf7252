"""CLI commands for the three jobs: nightly sync, backfill, ad hoc import (and serving nightly)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import orjson
import pyarrow.parquet as pq
import typer
from rich.table import Table

from pipelines.cli.console import console, fail
from pipelines.cli.execution import run_request
from pipelines.cli.options import (
    DryRunOpt,
    LedgerOpt,
    MappingOpt,
    MaxInvalidPctOpt,
    StateBlockOpt,
)
from pipelines.core.settings import prefect_api_configured, use_prefect_defaults
from pipelines.orchestration.engine import execute_job
from pipelines.output.report import RunReport
from pipelines.run.jobs import JOB_COLUMNS, JobSummary
from pipelines.run.request import RunRequest
from transforms.errors import LmsSyncError

JobOutOpt = Annotated[
    str | None,
    typer.Option(help="Folder (or s3://, gs://, az:// prefix) for the run folders, one per file."),
]
JobPrefectOpt = Annotated[
    bool, typer.Option("--prefect", help="Run as Prefect flows (subflow per file).")
]
BlockOpt = Annotated[str | None, typer.Option(help="Prefect Secret block holding the API key.")]


def nightly_command(
    landing: Annotated[str, typer.Argument(help="Landing directory or glob of exports.")],
    mapping: MappingOpt,
    out: JobOutOpt = None,
    ledger: LedgerOpt = None,
    dry_run: DryRunOpt = False,
    max_invalid_pct: MaxInvalidPctOpt = None,
    prefect: JobPrefectOpt = False,
    api_key_block: BlockOpt = None,
    state_block: StateBlockOpt = None,
) -> None:
    """Process the exports in LANDING not processed before (content fingerprints), oldest first.

    Safe to run twice: a processed file is skipped, a delivered row is never sent again.

    Example: lms-sync nightly /data/landing/cornerstone -m config/mappings/cornerstone_transcript.yaml
    """
    _run_job(
        "nightly_sync",
        [landing],
        mapping,
        out,
        ledger,
        dry_run,
        max_invalid_pct,
        prefect,
        api_key_block,
        state_block,
    )


def backfill_command(
    sources: Annotated[list[str], typer.Argument(help="Files, directories (partitions) or globs.")],
    mapping: MappingOpt,
    out: JobOutOpt = None,
    ledger: LedgerOpt = None,
    dry_run: DryRunOpt = False,
    max_invalid_pct: MaxInvalidPctOpt = None,
    prefect: JobPrefectOpt = False,
    api_key_block: BlockOpt = None,
    state_block: StateBlockOpt = None,
    parallel: Annotated[
        int, typer.Option(min=1, max=64, help="Files delivered at once (one rate budget).")
    ] = 1,
) -> None:
    """Deliver a history of many files, one run per file, with progress and an ETA.

    Resumable: after a crash or a stop, run the same command again.

    Example: lms-sync backfill 'exports/year=2024/**/*.parquet' -m config/mappings/moodle_scorm_tracks.yaml
    """
    _run_job(
        "backfill", sources, mapping, out, ledger, dry_run, max_invalid_pct, prefect,
        api_key_block, state_block, parallel,
    )  # fmt: skip


def import_command(
    source: Annotated[Path, typer.Argument(help="One export file.")],
    mapping: MappingOpt,
    send: Annotated[bool, typer.Option("--send", help="Deliver (default: dry run).")] = False,
    out: Annotated[str | None, typer.Option(help="Run folder (or its s3://… URL).")] = None,
    ledger: LedgerOpt = None,
    preview: Annotated[int, typer.Option(help="Payloads to show.")] = 10,
    prefect: JobPrefectOpt = False,
) -> None:
    """Ad hoc import of one file: a dry run with a preview and an error summary; --send delivers.

    Example: lms-sync import ~/Downloads/transcript.csv -m config/mappings/cornerstone_transcript.yaml
    """
    request = RunRequest(
        [str(source)],
        str(mapping),
        out=str(out) if out else None,
        dry_run=not send,
        ledger=str(ledger) if ledger else None,
    )
    try:
        report = run_request(request, prefect=prefect)
    except LmsSyncError as exc:
        fail(str(exc), exc.exit_code)
    if not send and report.folder is not None:
        _print_preview(report.folder / "payloads.jsonl", preview)
    _print_errors(report)
    summary = report.as_dict()
    console.print(
        f"rows read {summary['rows_read']:,}: "
        + ", ".join(f"{k} {v:,}" for k, v in summary["outcomes"].items() if v),
        highlight=False,
    )
    if summary.get("estimate"):
        console.print(
            f"a real run: {summary['estimate']['text']}  (add --send to deliver)", highlight=False
        )
    console.print(f"run folder: {report.folder}", highlight=False)
    raise typer.Exit(report.exit_code())


def serve_command(
    landing: Annotated[str, typer.Argument(help="Landing directory or glob of exports.")],
    mapping: MappingOpt,
    cron: Annotated[str, typer.Option(help="Schedule (cron, UTC).")] = "0 2 * * *",
    name: Annotated[str, typer.Option(help="Deployment name.")] = "nightly",
    ledger: LedgerOpt = None,
    api_key_block: BlockOpt = None,
    state_block: StateBlockOpt = None,
) -> None:
    """Serve the nightly_sync flow on a cron schedule (Prefect serve; runs until stopped).

    Example: lms-sync serve /data/landing -m config/mappings/workday_learning.yaml --cron "0 2 * * *"
    """
    use_prefect_defaults()
    from pipelines.orchestration.flows import nightly_sync  # lazy: Prefect only when serving

    nightly_sync.serve(
        name=name,
        cron=cron,
        parameters={
            "landing": landing,
            "mapping": str(mapping.resolve()),
            "ledger": str(ledger.resolve()) if ledger else None,
            "api_key_block": api_key_block,
            "state_block": state_block,
        },
    )


def _run_job(
    job: str,
    patterns: list[str],
    mapping: Path,
    out: str | None,
    ledger: Path | None,
    dry_run: bool,
    max_invalid_pct: float | None,
    prefect: bool,
    api_key_block: str | None,
    state_block: str | None,
    parallel: int = 1,
) -> None:
    request = RunRequest(
        patterns,
        str(mapping),
        out=str(out) if out else None,
        dry_run=dry_run,
        ledger=str(ledger) if ledger else None,
        max_invalid_pct=max_invalid_pct,
        state_block=state_block,
    )
    use_prefect = prefect or prefect_api_configured()
    try:
        summary = asyncio.run(
            execute_job(
                job,
                patterns,
                request,
                use_prefect=use_prefect,
                api_key_block=api_key_block,
                say=console.print,
                parallel=parallel,
            )
        )
    except LmsSyncError as exc:
        fail(str(exc), exc.exit_code)
    _print_job(summary)
    raise typer.Exit(summary.exit_code())


def _print_job(summary: JobSummary) -> None:
    table = Table(show_edge=False, box=None, padding=(0, 2))
    for column in JOB_COLUMNS:
        table.add_column(column, justify="left" if column in ("file", "run") else "right")
    for row in summary.table():
        table.add_row(*row)
    console.print(f"[bold]lms-sync {summary.job.replace('_', ' ')}[/bold]")
    console.print(table)
    if summary.already_processed:
        console.print(f"already processed, skipped: {len(summary.already_processed)} file(s)")
    if summary.not_started:
        console.print(
            f"[yellow]not started (run stopped):[/yellow] {len(summary.not_started)} file(s)"
        )


def _print_preview(payloads: Path, count: int) -> None:
    if count <= 0 or not payloads.exists():
        return
    table = Table(title=f"first {count} payloads", show_edge=False)
    # Converted values are what people check: never cut them; long ids fold instead of "…".
    table.add_column("row", no_wrap=True)
    table.add_column("user", overflow="fold", min_width=8)
    table.add_column("learning object", overflow="fold", min_width=8)
    table.add_column("completed_at", no_wrap=True, min_width=24)
    for column in ("time", "result", "score"):
        table.add_column(column, no_wrap=True)
    with payloads.open("rb") as handle:
        for _, line in zip(range(count), handle, strict=False):
            item = orjson.loads(line)
            body = item["body"]
            table.add_row(
                str(item["source_row"]),
                str(item["user_id"]),
                body["learning_object_external_reference"],
                body.get("completed_at", ""),
                body.get("time_spent", ""),
                body.get("result", {}).get("value", ""),
                str(body.get("score", {}).get("percentage", "")),
            )
    console.print(table)


def _print_errors(report: RunReport) -> None:
    path = Path(report.deadletter.get("parquet", ""))
    if (
        not path.is_file()
        or report.outcomes.get("invalid", 0) + report.outcomes.get("failed", 0) == 0
    ):
        return
    rows = pq.read_table(path, columns=["_dl_error_code", "_dl_error_message", "_dl_source_row"])
    by_code: dict[str, list[tuple[int, str]]] = {}
    for code, message, row in zip(*(rows.column(i).to_pylist() for i in range(3)), strict=True):
        by_code.setdefault(code, []).append((row, message))
    table = Table(title="dead-lettered rows by error code", show_edge=False)
    for column in ("code", "rows", "first example"):
        table.add_column(column)
    for code, items in sorted(by_code.items(), key=lambda kv: -len(kv[1])):
        row, message = items[0]
        table.add_row(code, f"{len(items):,}", f"row {row}: {message}")
    console.print(table)
