"""``lms-sync state``: where the state lives (info), bringing it to this version (migrate), and
moving it between stores (copy), e.g. from the SQLite default into PostgreSQL."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import orjson
import typer
from pydantic import ValidationError
from rich.console import Console

from pipelines.cli.console import fail, settings_error
from pipelines.cli.options import LedgerOpt
from pipelines.core.settings import DEFAULT_LEDGER, load_settings
from pipelines.core.state_location import StateLocation, resolve_state
from pipelines.state.state_copy import copy_state
from pipelines.state.state_info import state_info
from pipelines.state.state_migrations import open_state
from transforms.errors import LmsSyncError

__all__ = ["state_app"]

state_app = typer.Typer(
    help="The state store (SQLite or PostgreSQL): info, migrate, copy.", no_args_is_help=True
)
console = Console(highlight=False)
StoreArg = Annotated[
    str | None,
    typer.Argument(
        help="sqlite:///PATH, postgresql://… or a file path "
        "[default: LMS_SYNC_STATE_URL, else --ledger, else data/state/ledger.sqlite]."
    ),
]


def _location(store: str | None, ledger: Any = None) -> StateLocation:
    """The store named on the command line, else the configured one."""
    try:
        if store is not None:
            return StateLocation.parse(store) if "://" in store else StateLocation.sqlite(store)
        return resolve_state(ledger, load_settings().state_url, DEFAULT_LEDGER)
    except ValueError as exc:
        fail(settings_error(exc) if isinstance(exc, ValidationError) else str(exc))
    except LmsSyncError as exc:
        fail(str(exc), exc.exit_code)


@state_app.command("info")
def info_command(
    store: StoreArg = None,
    ledger: LedgerOpt = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON to stdout.")] = False,
) -> None:
    """The store, its schema version, rows per table and keys per target and outcome."""
    try:
        info = state_info(_location(store, ledger))
    except LmsSyncError as exc:
        fail(str(exc), exc.exit_code)
    if json_output:
        sys.stdout.buffer.write(orjson.dumps(info, option=orjson.OPT_INDENT_2) + b"\n")
        return
    console.print(f"store: {info['store']} ({info['kind']})")
    if not info["exists"]:
        console.print("no state yet (a delivering run creates it)")
        return
    console.print(
        f"schema version {info['schema_version']} (this lms-sync: {info['tool_version']})"
    )
    for table, n in info["tables"].items():
        console.print(f"  {table}: {n:,} rows")
    for target, outcomes in info["targets"].items():
        counts = ", ".join(f"{name} {n:,}" for name, n in outcomes.items() if n)
        console.print(f"  {target}: {counts}")


@state_app.command("migrate")
def migrate_command(store: StoreArg = None, ledger: LedgerOpt = None) -> None:
    """Create the schema, or bring an older one to this version (SQLite: a backup first)."""
    location = _location(store, ledger)
    try:
        db = open_state(location)
    except LmsSyncError as exc:
        fail(str(exc), exc.exit_code)
    assert db is not None
    db.close()
    console.print(f"{location.display}: schema version {state_info(location)['schema_version']}")


@state_app.command("copy")
def copy_command(
    source: Annotated[str, typer.Argument(help="From: sqlite:///PATH, a path or postgresql://…")],
    destination: Annotated[
        str, typer.Argument(help="To: postgresql://…, sqlite:///PATH or a path")
    ],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the result.")] = False,
) -> None:
    """Copy a whole state (ledger, processed exports, user cache) into another store.

    In batches, each committed; run it again to resume. Exit 1 when a table of the destination
    holds fewer rows than the source's. Stop runs on the source first.

    Example: lms-sync state copy data/state/ledger.sqlite postgresql://lms@db.internal/lms
    """
    src, dst = _location(source), _location(destination)
    if src == dst:
        fail("source and destination are the same store")
    try:
        tables = copy_state(src, dst, (lambda _: None) if quiet else console.print)
    except LmsSyncError as exc:
        fail(str(exc), exc.exit_code)
    for t in tables:
        mark = "ok" if t.complete else "MISSING ROWS"
        console.print(
            f"{t.table}: source {t.source_rows:,}, written {t.copied:,}, "
            f"destination {t.destination_rows:,}  {mark}"
        )
    if not all(t.complete for t in tables):
        raise typer.Exit(1)
    console.print(f"copied {src.display} into {dst.display}")
