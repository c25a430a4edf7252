"""``lms-sync ledger``: look into the delivery ledger and fix its state by hand (DESIGN §7): keys
per outcome, one key or the key of one source row (computed by the pipeline's own check step),
forget keys, lift ``gave_up`` (each an atomic write, safe beside a running delivery)."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import orjson
import pyarrow.compute as pc
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from pipelines.cli.console import fail, settings_error
from pipelines.cli.options import LedgerOpt
from pipelines.core.errors import SourceError
from pipelines.core.settings import DEFAULT_LEDGER, environment, load_settings
from pipelines.core.state_location import StateLocation, resolve_state
from pipelines.run.chunks import Chunk, check_chunk, iter_chunks
from pipelines.run.plan import load_mapping, plan_run
from pipelines.source.batches import SourceBatch
from pipelines.state.ledger import Ledger
from pipelines.state.state_migrations import state_exists
from transforms.errors import LmsSyncError
from transforms.mapping import MappingSpec

__all__ = [
    "SourceRowKey",
    "key_of_source_row",
    "ledger_command",
    "parse_source_row",
    "read_key_file",
]

EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE = 0, 1, 2
_KEY = re.compile(r"[0-9a-fA-F]{32}")

output = Console(soft_wrap=True)


@dataclass(frozen=True)
class SourceRowKey:
    """What the pipeline makes of one source row: its status and, when valid, its key."""

    source: Path
    row: int
    status: str  # valid | skipped | invalid
    key: str | None
    error_code: str | None
    error_message: str | None


def parse_source_row(text: str) -> tuple[Path, int]:
    """``FILE:ROW`` → (file, 1-based row); the last colon splits, so ``C:\\x.csv:7`` works too."""
    file, sep, row = text.rpartition(":")
    if not sep or not file or not row.strip().isdigit() or int(row) < 1:
        raise typer.BadParameter(f"expected FILE:ROW with ROW a number from 1, got {text!r}")
    return Path(file), int(row)


def key_of_source_row(
    source: Path, row: int, spec: MappingSpec, account_id: str | None, now: datetime
) -> SourceRowKey:
    """Read row ``row`` of ``source`` and check it as a run would (SourceError if there is none)."""
    plan = plan_run([str(source)], spec, account_id)
    for chunk in iter_chunks(plan):
        at = int(pc.index(chunk.batch.rows, row).as_py())
        if at < 0:
            continue
        batch = chunk.batch
        one = SourceBatch(
            batch.table.slice(at, 1), batch.rows.slice(at, 1), batch.read_errors.slice(at, 1)
        )
        checked = check_chunk(Chunk(chunk.source, one, chunk.first_ordinal + at), plan, now)
        return SourceRowKey(
            source=source,
            row=row,
            status=checked.status[0].as_py(),
            key=checked.key[0].as_py(),
            error_code=checked.error_code[0].as_py(),
            error_message=checked.error_message[0].as_py(),
        )
    raise SourceError(
        source, f"has no row {row} (rows count from 1, header and blank lines excluded)"
    )


def read_key_file(path: Path) -> list[str]:
    """Keys listed one a line; blank lines and ``#`` comments are ignored."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SourceError(path, f"cannot read: {exc.strerror or exc}") from None
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


def ledger_command(
    ledger: LedgerOpt = None,
    target: Annotated[
        str | None, typer.Option(help="Target base URL [default: STACKONE_BASE_URL or StackOne].")
    ] = None,
    key: Annotated[
        str | None, typer.Option(help="Show what the ledger holds for this key.")
    ] = None,
    source_row: Annotated[
        str | None,
        typer.Option(help="FILE:ROW: find the key of a source row (needs --mapping)."),
    ] = None,
    mapping: Annotated[
        Path | None, typer.Option("--mapping", "-m", help="Mapping YAML the file is read with.")
    ] = None,
    forget: Annotated[
        list[str] | None,
        typer.Option(help="Forget this key (repeatable): the next run sends its row again."),
    ] = None,
    forget_file: Annotated[
        Path | None, typer.Option(help="Forget the keys listed in this file, one a line.")
    ] = None,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Lift gave_up: later runs retry those keys.")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON to stdout.")] = False,
) -> None:
    """Show keys per outcome, look up a key or a source row, forget keys, lift gave_up.

    Exit 0, 1 when a looked-up key or row is not in the ledger, 2 on a usage error.

    Examples:

      lms-sync ledger

      lms-sync ledger --source-row exports/workday.csv:1841 -m config/mappings/workday_learning.yaml

      lms-sync ledger --forget 3f9c…e1 --retry-failed
    """

    env = environment()
    result: dict[str, Any] = {}
    found = True
    try:
        settings = load_settings(base_url=target)
        store = resolve_state(ledger, settings.state_url, DEFAULT_LEDGER)
        keys, lookup_key = _checked_arguments(store, key, forget, forget_file)
        row_of = _source_row_key(source_row, mapping, settings.account_id, env)
        with Ledger(store, settings.target) as state:
            result["target"] = state.target
            _change(state, keys, retry_failed, result)
            found = _look_up(state, lookup_key, row_of, result)
    except LmsSyncError as exc:
        fail(str(exc), exc.exit_code)
    except ValidationError as exc:
        fail(settings_error(exc))
    _finish(result, found, json_output)


def _checked_arguments(
    store: StateLocation, key: str | None, forget: list[str] | None, forget_file: Path | None
) -> tuple[list[str], str | None]:
    """The keys to forget and the key to look up, once the state is known to exist."""
    if not state_exists(store):
        raise SourceError(store.display, "no ledger here (a delivering run creates it)")
    keys = _checked_keys([*(forget or []), *(read_key_file(forget_file) if forget_file else [])])
    lookup_key = _checked_keys([key])[0] if key else None
    return keys, lookup_key


def _source_row_key(
    source_row: str | None, mapping: Path | None, account_id: str | None, env: dict[str, str]
) -> SourceRowKey | None:
    """The key of ``--source-row FILE:ROW`` read with ``--mapping``, if one was asked for."""
    if source_row is None:
        return None
    if mapping is None:
        raise typer.BadParameter("--source-row needs --mapping (the file's mapping YAML)")
    file, row = parse_source_row(source_row)
    return key_of_source_row(file, row, load_mapping(mapping, env), account_id, datetime.now(UTC))


def _change(state: Ledger, keys: list[str], retry_failed: bool, result: dict[str, Any]) -> None:
    """Forget keys and lift gave_up (each one atomic write), noting counts in ``result``."""
    if keys:
        result["forgotten"] = state.forget(keys)
    if retry_failed:
        result["retried"] = state.retry_failed()


def _look_up(
    state: Ledger, lookup_key: str | None, row_of: SourceRowKey | None, result: dict[str, Any]
) -> bool:
    """Put the asked key's and source row's records (else the counts) in ``result``; False if
    a looked-up key is not in the ledger."""
    found = True
    if lookup_key is not None:
        result["key"] = {"key": lookup_key.lower(), "record": state.lookup(lookup_key)}
        found = found and result["key"]["record"] is not None
    if row_of is not None:
        record = state.lookup(row_of.key) if row_of.key else None
        result["source_row"] = {**_row_dict(row_of), "record": record}
        found = found and record is not None
    if lookup_key is None and row_of is None:
        result["counts"] = state.counts()
        if not sum(result["counts"].values()):
            result["other_targets"] = state.other_targets()
    return found


def _finish(result: dict[str, Any], found: bool, json_output: bool) -> NoReturn:
    """Print the result (JSON to stdout, or tables) and exit 0, or 1 when a key was not found."""
    if json_output:
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        _print(result)
    raise typer.Exit(EXIT_OK if found else EXIT_NOT_FOUND)


def _checked_keys(keys: list[str | None]) -> list[str]:
    """Keys must be 32 hex characters (BLAKE2b-128), else a usage error naming the first bad one."""
    bad = [k for k in keys if k is None or not _KEY.fullmatch(k)]
    if bad:
        raise typer.BadParameter(f"not a key (32 hex characters): {bad[0]!r}")
    return [k.lower() for k in keys if k is not None]


def _row_dict(found: SourceRowKey) -> dict[str, Any]:
    return {
        "source": str(found.source),
        "row": found.row,
        "status": found.status,
        "key": found.key,
        "error_code": found.error_code,
        "error_message": found.error_message,
    }


def _print(result: dict[str, Any]) -> None:
    output.print(f"[bold]ledger[/bold] target {result['target']}", highlight=False)
    if "forgotten" in result:
        output.print(f"forgot {result['forgotten']:,} key(s); the next run sends their rows again")
    if "retried" in result:
        output.print(f"lifted gave_up on {result['retried']:,} key(s); later runs retry them")
    if "counts" in result:
        table = Table(show_edge=False, box=None, padding=(0, 2))
        table.add_column("outcome")
        table.add_column("keys", justify="right")
        for name, count in result["counts"].items():
            table.add_row(name, f"{count:,}")
        table.add_row("[bold]total[/bold]", f"[bold]{sum(result['counts'].values()):,}[/bold]")
        output.print(table)
        if result.get("other_targets"):
            others = ", ".join(result["other_targets"])
            output.print(f"no keys for this target; the ledger has keys for: {others} (--target)")
    if "source_row" in result:
        found = result["source_row"]
        where = f"{found['source']} row {found['row']}"
        if found["key"] is None:
            error = found["error_code"]
            reason = f" ({error}: {found['error_message']})" if error else ""
            output.print(
                f"{where} is {found['status']}{reason}; it has no key and is never sent",
                highlight=False,
            )
        else:
            output.print(f"{where} has key {found['key']}", highlight=False)
            _print_record(found["key"], found["record"])
    if "key" in result:
        _print_record(result["key"]["key"], result["key"]["record"])


def _print_record(key: str, record: dict[str, Any] | None) -> None:
    if record is None:
        output.print(f"key {key} is not in the ledger for this target (never sent, or forgotten)")
        return
    table = Table(show_edge=False, box=None, padding=(0, 2), show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for name, value in record.items():
        if name != "target":
            table.add_row(name, "" if value is None else str(value))
    output.print(table)
