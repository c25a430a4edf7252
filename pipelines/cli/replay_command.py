"""``lms-sync replay``: re-submit the fixed rows of dead-letter files, keeping their origin."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pipelines.cli.execution import run_and_summarise
from pipelines.cli.options import (
    BaseUrlOpt,
    ConcurrencyOpt,
    DryRunOpt,
    JsonOpt,
    KeepRunsOpt,
    LedgerOpt,
    MaxInvalidPctOpt,
    OutOpt,
    PrefectOpt,
    QuietOpt,
    RateLimitOpt,
    WaitOpt,
)
from pipelines.core.settings import DEFAULT_LEDGER
from pipelines.output.report import RunReport
from pipelines.run.request import RunRequest

__all__ = ["replay_command", "succeeded"]

# Duplicates whose record StackOne already holds: the row reached its goal.
_ALREADY_THERE = ("already_delivered", "http_409")

console = Console(stderr=True, soft_wrap=True)


def succeeded(report: RunReport) -> int:
    """Replayed rows that now succeed: delivered, would_send, or already held by StackOne."""
    return (
        report.outcomes["delivered"]
        + report.outcomes["would_send"]
        + sum(report.reasons[reason] for reason in _ALREADY_THERE)
    )


def replay_command(
    deadletters: Annotated[
        list[str],
        typer.Argument(help="deadletter.parquet files (or the run folders holding them)."),
    ],
    mapping: Annotated[
        Path, typer.Option("--mapping", "-m", help="Mapping YAML the rows were first read with.")
    ],
    dry_run: DryRunOpt = False,
    out: OutOpt = None,
    base_url: BaseUrlOpt = None,
    rate_limit: RateLimitOpt = None,
    concurrency: ConcurrencyOpt = None,
    ledger: LedgerOpt = DEFAULT_LEDGER,
    wait: WaitOpt = False,
    prefect: PrefectOpt = False,
    max_invalid_pct: MaxInvalidPctOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    keep_runs: KeepRunsOpt = None,
) -> None:
    """Re-submit the rows of dead-letter files after they were fixed.

    Rows keep their original source file and row, so a row that fails again lands in the new
    dead-letter file under its first address. A row dead-lettered as malformed_row stays so until
    its _dl_error_code is cleared (its fields may be shifted). Exit codes as for `run`.

    Example: lms-sync replay data/runs/20240501T020000Z-ab12/deadletter.parquet -m config/mappings/workday_learning.yaml
    """

    request = RunRequest(
        deadletters,
        str(mapping),
        replay=True,
        out=str(out) if out else None,
        dry_run=dry_run,
        ledger=str(ledger),
        wait=wait,
        max_invalid_pct=max_invalid_pct,
        base_url=base_url,
        rate_limit=rate_limit,
        concurrency=concurrency,
    )
    report = run_and_summarise(
        request, prefect=prefect, quiet=quiet, json_output=json_output, keep_runs=keep_runs
    )
    if not quiet:
        console.print(
            f"[bold]{succeeded(report):,} of {report.rows_read:,} replayed rows now succeed[/bold]",
            highlight=False,
        )
    raise typer.Exit(report.exit_code())
