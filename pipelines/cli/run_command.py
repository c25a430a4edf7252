"""``lms-sync run`` and ``lms-sync replay``: one command body and one set of options for both.

Annotations are evaluated here (no ``from __future__ import annotations``) so that each command
gets its own argument help from the factory's parameters.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from pipelines.cli.console import console
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
    StateBlockOpt,
)
from pipelines.output.report import RunReport
from pipelines.run.request import RunRequest

# Duplicates whose record StackOne already holds: a replayed row reached its goal.
_ALREADY_THERE = ("already_delivered", "http_409")
CheckRemoteOpt = Annotated[
    bool, typer.Option("--check-remote", help="Dry run: look up each distinct user once first.")
]
ResendInDoubtOpt = Annotated[
    bool,
    typer.Option(
        "--resend-in-doubt",
        help="Send keys left in doubt by a crash even when the API cannot list what it holds.",
    ),
]


def succeeded(report: RunReport) -> int:
    """Replayed rows that now succeed: delivered, would_send, or already held by StackOne."""
    return (
        report.outcomes["delivered"]
        + report.outcomes["would_send"]
        + sum(report.reasons[reason] for reason in _ALREADY_THERE)
    )


def run_command(
    *, replay: bool, sources_help: str, mapping_help: str, doc: str
) -> Callable[..., None]:
    """The ``run`` command (``replay=False``) or the ``replay`` command over dead-letter files."""

    def command(
        sources: Annotated[
            list[str],
            typer.Argument(metavar="DEADLETTERS" if replay else "SOURCES", help=sources_help),
        ],
        mapping: Annotated[Path, typer.Option("--mapping", "-m", help=mapping_help)],
        dry_run: DryRunOpt = False,
        out: OutOpt = None,
        base_url: BaseUrlOpt = None,
        rate_limit: RateLimitOpt = None,
        concurrency: ConcurrencyOpt = None,
        ledger: LedgerOpt = None,
        state_block: StateBlockOpt = None,
        prefect: PrefectOpt = False,
        max_invalid_pct: MaxInvalidPctOpt = None,
        json_output: JsonOpt = False,
        quiet: QuietOpt = False,
        check_remote: CheckRemoteOpt = False,
        keep_runs: KeepRunsOpt = None,
        resend_in_doubt: ResendInDoubtOpt = False,
    ) -> None:
        request = RunRequest(
            sources,
            str(mapping),
            replay=replay,
            out=str(out) if out else None,
            dry_run=dry_run,
            ledger=str(ledger) if ledger else None,
            max_invalid_pct=max_invalid_pct,
            check_remote=check_remote,
            base_url=base_url,
            rate_limit=rate_limit,
            concurrency=concurrency,
            resend_in_doubt=resend_in_doubt,
            state_block=state_block,
        )
        report = run_and_summarise(
            request, prefect=prefect, quiet=quiet, json_output=json_output, keep_runs=keep_runs
        )
        if replay and not quiet:
            console.print(
                f"[bold]{succeeded(report):,} of {report.rows_read:,} replayed rows now succeed[/bold]",
                highlight=False,
            )
        raise typer.Exit(report.exit_code())

    command.__doc__ = doc
    return command
