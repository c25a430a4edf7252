"""The ``lms-sync`` command line: the edge where flags and environment become settings."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from pipelines.readers import expand_sources
from pipelines.report import OUTCOMES
from pipelines.steps import load_mapping, plan_run
from transforms.errors import LmsSyncError

app = typer.Typer(
    name="lms-sync",
    help="Sync LMS course completions from CSV/Parquet exports to StackOne.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True, soft_wrap=True)

EXIT_OK, EXIT_DEADLETTERED, EXIT_USAGE, EXIT_ABORTED = 0, 1, 2, 3
DEFAULT_TARGET = "https://api.stackone.com"

SourcesArg = Annotated[list[str], typer.Argument(help="Export files, directories or globs.")]
MappingOpt = Annotated[Path, typer.Option("--mapping", "-m", help="Mapping YAML (config/mappings/).")]


@app.command()
def run(
    sources: SourcesArg,
    mapping: MappingOpt,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and write payloads; send nothing.")] = False,
    out: Annotated[Path | None, typer.Option(help="Run folder (default data/runs/<run-id>/).")] = None,
    prefect: Annotated[bool, typer.Option("--prefect", help="Run as a Prefect flow even without PREFECT_API_URL.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print report.json to stdout.")] = False,
) -> None:
    """Read, convert and validate exports; with --dry-run write payloads.jsonl, dead-letter and report.

    Example: lms-sync run data/samples/cornerstone_transcript.csv -m config/mappings/cornerstone.yaml --dry-run
    """
    if not dry_run:
        _fail("delivery is not configured yet: use --dry-run (delivery comes with the next release)")
    env = dict(os.environ)
    try:
        spec = load_mapping(mapping, env)
        plan = plan_run(sources, spec, env.get("STACKONE_ACCOUNT_ID"))
        target = env.get("STACKONE_BASE_URL", DEFAULT_TARGET)
        if prefect or env.get("PREFECT_API_URL"):
            from pipelines.flows import sync_completions

            summary = sync_completions(plan, out, target)
            folder = Path(summary["deadletter"]["csv"]).parent
        else:
            from pipelines.dryrun import dry_run as run_dry

            report, folder = run_dry(plan, out=out, target=target)
            summary = report.as_dict()
    except LmsSyncError as exc:
        _fail(str(exc), exc.exit_code)
    _print_summary(summary, folder, json_output)
    raise typer.Exit(_exit_code(summary))


@app.command("check-mapping")
def check_mapping(
    mapping: Annotated[Path, typer.Argument(help="Mapping YAML to check.")],
    sources: Annotated[list[str] | None, typer.Argument(help="Exports whose headers to check against.")] = None,
) -> None:
    """Check a mapping file (and, given exports, that every column it names exists).

    Example: lms-sync check-mapping config/mappings/workday.yaml data/samples/workday_learning.csv
    """
    env = dict(os.environ)
    try:
        spec = load_mapping(mapping, env)
        if sources:
            plan_run(sources, spec, env.get("STACKONE_ACCOUNT_ID") or "check-only")
            checked = f" against {len(expand_sources(sources))} source(s)"
        else:
            checked = ""
    except LmsSyncError as exc:
        _fail(str(exc), exc.exit_code)
    console.print(f"[green]ok[/green] {mapping}{checked}")


def _fail(message: str, code: int = EXIT_USAGE) -> None:
    console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _exit_code(summary: dict[str, Any]) -> int:
    if summary.get("aborted"):
        return EXIT_ABORTED
    outcomes = summary["outcomes"]
    return EXIT_DEADLETTERED if outcomes["invalid"] or outcomes["failed"] else EXIT_OK


def _print_summary(summary: dict[str, Any], folder: Path, json_output: bool) -> None:
    if json_output:
        import orjson

        sys.stdout.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    console.print(f"[bold]lms-sync {summary['mode'].replace('_', ' ')}[/bold] {summary['run_id']}", highlight=False)
    table = Table(show_edge=False, box=None, padding=(0, 2))
    table.add_column("outcome")
    table.add_column("rows", justify="right")
    for name in OUTCOMES:
        if summary["outcomes"][name]:
            table.add_row(name, f"{summary['outcomes'][name]:,}")
    table.add_row("[bold]rows read[/bold]", f"[bold]{summary['rows_read']:,}[/bold]")
    console.print(table)
    if summary["reasons"]:
        reasons = ", ".join(f"{code} {count:,}" for code, count in summary["reasons"].items())
        console.print(f"reasons: {reasons}", highlight=False)
    console.print(f"run folder: {folder}  ({summary['rows_per_second']:,} rows/s)", highlight=False)


def main() -> None:
    """Console-script entry point."""
    app()
