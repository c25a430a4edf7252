"""``lms-sync inspect FILE``: profile a sample of an export and propose a starting mapping file.

A shipped flavour whose columns are all in the header is proposed as it is (shipped_flavours).

Reads the first rows with the run's own readers (so what inspect sees is what a run reads), finds
the CSV encoding and delimiter, prints one line per column and the proposed YAML, and can write
the YAML for the user to review.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Annotated, NoReturn

import pyarrow as pa
import pyarrow.compute as pc
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pipelines.cli.shipped_flavours import load_flavours, recognise
from pipelines.core.errors import SourceError
from pipelines.source.batches import iter_batches
from pipelines.source.headers import read_header
from pipelines.source.source_files import detect_format
from transforms.errors import LmsSyncError, MappingError
from transforms.export_profile import Profile, profile_table, propose_mapping
from transforms.mapping import DELIMITERS, check_columns, parse_mapping
from transforms.masks import count_true

DEFAULT_ROWS = 10_000
ENCODINGS = ("utf-8", "cp1252", "latin-1")  # tried in order; latin-1 decodes any byte
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_PIPED_WIDTH = 160
_SHOWN_SAMPLES = 3
_SAMPLE_WIDTH = 30


def detect_encoding(path: Path) -> str:
    """The first of utf-8 (BOM tolerated), cp1252, latin-1 that decodes the file's first 64 KB."""
    with path.open("rb") as stream:
        if stream.read(2) in _UTF16_BOMS and not path.name.lower().endswith(".gz"):
            return "utf-16"
    for encoding in ENCODINGS:
        try:
            read_header(path, fmt="csv", encoding=encoding)
        except SourceError as exc:
            if "cannot decode" in str(exc):
                continue
            raise
        return encoding
    return ENCODINGS[-1]


def detect_delimiter(path: Path, encoding: str) -> str:
    """The delimiter the reader's auto-detection picks, named: , ; tab or |."""
    header = read_header(path, fmt="csv", delimiter="auto", encoding=encoding)
    for delimiter in DELIMITERS[1:]:
        try:
            if read_header(path, fmt="csv", delimiter=delimiter, encoding=encoding) == header:
                return delimiter
        except SourceError:
            continue
    return ","


def read_sample(
    path: Path, *, fmt: str, delimiter: str, encoding: str, rows: int
) -> tuple[pa.Table, int]:
    """The first ``rows`` records, malformed ones left out; also how many were left out."""
    tables: list[pa.Table] = []
    seen = malformed = 0
    batches = iter_batches(
        path, fmt=fmt, delimiter=delimiter, encoding=encoding, batch_rows=min(rows, DEFAULT_ROWS)
    )
    try:
        for batch in batches:
            take = min(batch.num_rows, rows - seen)
            good = pc.is_null(batch.read_errors.slice(0, take))
            tables.append(batch.table.slice(0, take).filter(good))
            malformed += take - count_true(good)
            seen += take
            if seen >= rows:
                break
    finally:
        batches.close()  # type: ignore[attr-defined]
    if not tables:
        header = read_header(path, fmt=fmt, delimiter=delimiter, encoding=encoding)
        return pa.table({name: pa.array([], pa.string()) for name in header}), 0
    return pa.concat_tables(tables), malformed


def profile_file(path: Path, rows: int = DEFAULT_ROWS) -> tuple[Profile, list[str], int]:
    """Profile the first ``rows`` records of ``path``: (profile, header, malformed records)."""
    fmt = detect_format(path)
    if fmt == "parquet":
        table, malformed = read_sample(path, fmt=fmt, delimiter="auto", encoding="utf-8", rows=rows)
        return profile_table(table, fmt=fmt), read_header(path, fmt=fmt), malformed
    encoding = detect_encoding(path)
    delimiter = detect_delimiter(path, encoding)
    table, malformed = read_sample(path, fmt=fmt, delimiter=delimiter, encoding=encoding, rows=rows)
    header = read_header(path, fmt=fmt, delimiter=delimiter, encoding=encoding)
    profile = profile_table(table, fmt=fmt, delimiter=delimiter, encoding=encoding)
    return profile, header, malformed


def inspect_command(
    file: Annotated[Path, typer.Argument(help="The export to inspect (CSV, CSV.gz or Parquet).")],
    write: Annotated[
        Path | None, typer.Option(help="Write the proposed mapping YAML to this new file.")
    ] = None,
    rows: Annotated[int, typer.Option(min=1, help="How many records to sample.")] = DEFAULT_ROWS,
) -> None:
    """Profile an export (kinds, blanks, samples) and propose a starting mapping file.

    When every column a shipped mapping (config/mappings) names is in the header, that mapping
    is proposed; otherwise one is drawn up from the profile.

    Example:

      lms-sync inspect data/samples/workday_learning.csv --write config/mappings/my_export.yaml
    """
    out = Console()
    if not out.is_terminal:  # piped or captured: rich would assume 80 columns
        out.width = _PIPED_WIDTH
    err = Console(stderr=True)
    if write is not None and write.exists():
        _fail(err, f"{write} already exists; choose a new path (inspect never overwrites)")
    try:
        profile, header, malformed = profile_file(file, rows)
    except LmsSyncError as exc:
        _fail(err, str(exc))
    flavour, flavour_lines = recognise(header, load_flavours())
    proposal = flavour.text if flavour is not None else propose_mapping(profile, header)
    out.print(_summary(file, profile, malformed), highlight=False)
    out.print(_table(profile))
    out.print(Text("\n".join(flavour_lines)), highlight=False, soft_wrap=True)
    out.print(Text(proposal), highlight=False)
    try:
        check_columns(parse_mapping(proposal, {}), header, file.name)
    except MappingError as exc:  # a bug in the proposal, not the user's fault: say so, go on
        err.print(f"[yellow]warning:[/yellow] the proposal does not check: {exc}", highlight=False)
    if write is not None:
        try:
            write.parent.mkdir(parents=True, exist_ok=True)
            with write.open("x", encoding="utf-8") as stream:
                stream.write(proposal)
        except OSError as exc:
            _fail(err, f"cannot write {write}: {exc.strerror or exc}")
        out.print(f"wrote {write}", highlight=False)


def _summary(path: Path, profile: Profile, malformed: int) -> str:
    parts = [f"{path}: {profile.format}"]
    if profile.format == "csv":
        shown = {"\t": "tab"}.get(profile.delimiter or ",", repr(profile.delimiter))
        parts.append(f"delimiter {shown}, encoding {profile.encoding}")
    parts.append(f"{profile.rows:,} rows sampled")
    if malformed:
        parts.append(f"{malformed:,} malformed left out")
    return ", ".join(parts)


def _table(profile: Profile) -> Table:
    table = Table(show_edge=False, padding=(0, 1))
    table.add_column("column", overflow="fold")
    table.add_column("kind")
    table.add_column("format / unit", overflow="fold")
    table.add_column("blank %", justify="right")
    table.add_column("distinct", justify="right")
    table.add_column("samples", overflow="fold")
    for column in profile.columns:
        table.add_row(
            Text(column.name),
            column.kind,
            Text(column.detail),
            f"{column.blank_rate:.0%}",
            f"{column.distinct:,}",
            Text(" | ".join(_clip(s) for s in column.samples[:_SHOWN_SAMPLES])),
        )
    return table


def _clip(sample: str) -> str:
    return sample if len(sample) <= _SAMPLE_WIDTH else sample[: _SAMPLE_WIDTH - 1] + "…"


def _fail(console: Console, message: str) -> NoReturn:
    console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)
