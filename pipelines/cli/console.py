"""What the command line prints: one-line errors, run summaries. Shared by every command."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NoReturn

import orjson
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from pipelines.output.account_counts import account_table
from pipelines.output.report import OUTCOMES, RunReport

console = Console(stderr=True, soft_wrap=True)
EXIT_OK, EXIT_DEADLETTERED, EXIT_USAGE, EXIT_ABORTED = 0, 1, 2, 3


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print one ``error:`` line and exit with ``code``."""
    console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def crash_message(report: RunReport) -> str:
    """The one line naming a crashed run's error and where its traceback was saved."""
    return f"run crashed: {report.error}; traceback saved in {report.traceback_path}"


def settings_error(exc: ValidationError) -> str:
    """One line naming the setting (never its value: it may be the API key)."""
    error = exc.errors()[0]
    name = ".".join(str(part) for part in error["loc"]) or "settings"
    return f"{name}: {str(error['msg']).removeprefix('Value error, ')}"


def print_summary(summary: dict[str, Any], folder: Path | None, json_output: bool) -> None:
    """The run summary: outcome table, reasons, cost estimate, run folder (or report.json)."""
    if json_output:
        sys.stdout.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    status = "" if summary["status"] == "finished" else f" [bold red]{summary['status']}[/bold red]"
    console.print(
        f"[bold]lms-sync {summary['mode'].replace('_', ' ')}[/bold] {summary['run_id']}{status}",
        highlight=False,
    )
    table = Table(show_edge=False, box=None, padding=(0, 2))
    table.add_column("outcome")
    table.add_column("rows", justify="right")
    for name in OUTCOMES:
        if summary["outcomes"][name]:
            table.add_row(name, f"{summary['outcomes'][name]:,}")
    table.add_row("[bold]rows read[/bold]", f"[bold]{summary['rows_read']:,}[/bold]")
    console.print(table)
    _print_accounts(summary)
    if summary.get("estimate"):
        console.print(f"a real run: {summary['estimate']['text']}", highlight=False)
    remote = summary.get("remote_check")
    if remote:
        _print_unreachable(remote.get("unreachable_accounts") or {})
        shown = ", ".join(remote["missing"][:10]) + (" …" if remote["missing_count"] > 10 else "")
        console.print(
            f"remote check: {remote['users_checked']:,} users looked up, "
            f"{remote['missing_count']:,} not found{': ' + shown if shown else ''}",
            highlight=False,
        )
    if summary["reasons"]:
        reasons = ", ".join(f"{code} {count:,}" for code, count in summary["reasons"].items())
        console.print(f"reasons: {reasons}", highlight=False)
    console.print(f"run folder: {folder}  ({summary['rows_per_second']:,} rows/s)", highlight=False)


def _print_accounts(summary: dict[str, Any]) -> None:
    """Rows per account (a mapping that reads the account from a column), and refused accounts."""
    refused: dict[str, str] = summary.get("refused_accounts") or {}
    if summary.get("accounts"):
        header, rows = account_table(summary["accounts"], refused)
        table = Table(show_edge=False, box=None, padding=(0, 2))
        for i, name in enumerate(header):
            table.add_column(name, justify="right" if i else "left")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    for account, message in refused.items():
        console.print(f"account {account!r} refused (HTTP 403): {message}", highlight=False)


def _print_unreachable(unreachable: dict[str, str]) -> None:
    """The accounts a ``--check-remote`` dry run found the API key cannot reach."""
    for account, message in unreachable.items():
        console.print(
            f"remote check: account {account!r} is not reachable with this API key: {message}",
            highlight=False,
        )
