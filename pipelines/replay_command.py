"""``lms-sync replay``: re-submit the fixed rows of dead-letter files, keeping their origin."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from pipelines.console import fail, print_summary, settings_error
from pipelines.options import (
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
from pipelines.readers import expand_sources
from pipelines.replay import check_deadletter
from pipelines.report import RunReport
from pipelines.retention import prune_runs
from pipelines.runner import DEFAULT_LEDGER, RunOptions, execute
from pipelines.runs import DEFAULT_RUNS_DIR
from pipelines.settings import load_settings
from pipelines.steps import DEFAULT_BATCH_ROWS, RunPlan, load_mapping, plan_run
from transforms.errors import LmsSyncError
from transforms.mapping import MappingSpec

__all__ = ["plan_replay", "replay_command", "succeeded"]

DEADLETTER_NAME = "deadletter.parquet"
# Duplicates whose record StackOne already holds: the row reached its goal.
_ALREADY_THERE = ("already_delivered", "http_409")

console = Console(stderr=True, soft_wrap=True)


def plan_replay(
    deadletters: list[str],
    spec: MappingSpec,
    account_id: str | None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> RunPlan:
    """Plan a run over dead-letter files (or run folders): read as Parquet, rows keep their origin."""
    paths = [str(_deadletter_of(Path(pattern))) for pattern in deadletters]
    for path in expand_sources(paths):
        check_deadletter(path)
    as_parquet = spec.model_copy(
        update={"source": spec.source.model_copy(update={"format": "parquet"})}
    )
    return dataclasses.replace(plan_run(paths, as_parquet, account_id, batch_rows), replay=True)


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

    env = dict(os.environ)
    try:
        settings = load_settings(base_url=base_url, rate_limit=rate_limit, concurrency=concurrency)
        plan = plan_replay(deadletters, load_mapping(mapping, env), settings.account_id)
        use_prefect = prefect or bool(env.get("PREFECT_API_URL"))
        options = RunOptions(out, dry_run, ledger, wait, use_prefect, max_invalid_pct)
        report = execute(plan, settings, options)
        if keep_runs is not None:
            prune_runs(DEFAULT_RUNS_DIR, keep_runs)
    except LmsSyncError as exc:
        fail(str(exc), exc.exit_code)
    except ValidationError as exc:
        fail(settings_error(exc))
    if not quiet:
        print_summary(report.as_dict(), report.folder, json_output)
        console.print(
            f"[bold]{succeeded(report):,} of {report.rows_read:,} replayed rows now succeed[/bold]",
            highlight=False,
        )
    raise typer.Exit(report.exit_code())


def _deadletter_of(path: Path) -> Path:
    """A run folder stands for its deadletter.parquet."""
    return path / DEADLETTER_NAME if path.is_dir() else path
