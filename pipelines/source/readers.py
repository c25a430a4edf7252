"""Stream source exports (CSV, CSV.gz, Parquet) as Arrow batches with exact 1-based record numbers.

CSV is read by pyarrow's streaming reader, every column as text. Record numbers must be exact
(DESIGN §6, §8 ``_dl_source_row``), but pyarrow drops malformed records and cannot say where they
were, and it silently accepts a quoted field left open at the end of the file. So: when pyarrow
meets a malformed record (or any parse error, or a suspect last record), the batches it already
handed out stand (they were clean), and the rest of the file is read again by Python's ``csv``
module, which is slower but sees every record. Malformed files are rare; clean ones stay fast.
Encodings whose bytes are not ASCII-compatible (UTF-16/32) always take the Python path.
"""

from __future__ import annotations

import codecs
import csv
import glob
import gzip
import io
import itertools
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal, cast

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipelines.core.errors import SourceError

__all__ = [
    "SourceBatch",
    "detect_format",
    "expand_sources",
    "iter_batches",
    "read_header",
]

DEFAULT_BATCH_ROWS = 100_000
DELIMITERS = (",", ";", "\t", "|")
SOURCE_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")  # what a directory source contributes
CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
SNIFF_BYTES = 64 * 1024  # read to detect the delimiter and the header
_TAIL_BYTES = 64 * 1024  # kept from the end of the stream to check the last record
_PYTHON_PIECE_ROWS = 10_000
_DELIMITER_ALIASES = {"\\t": "\t", "tab": "\t"}

Format = Literal["csv", "parquet"]


@dataclass(frozen=True)
class SourceBatch:
    """A slice of one source file.

    ``table``: the source's columns (CSV: all ``pa.string()``; Parquet: its own types), possibly
    chunked. ``rows``: int64, 1-based record number in the file (header and blank lines excluded).
    ``read_errors``: string, null for a good record, else why the record is malformed; malformed
    records are rows too, holding what could be parsed (missing fields null).
    """

    table: pa.Table
    rows: pa.Array
    read_errors: pa.Array

    @property
    def num_rows(self) -> int:
        """Number of records in the batch."""
        return int(self.table.num_rows)


def expand_sources(patterns: Sequence[str]) -> list[Path]:
    """Turn SOURCE arguments (files, directories, globs) into a deduplicated, ordered file list."""
    found: list[Path] = []
    seen: set[Path] = set()
    for pattern in patterns:
        for path in _expand_one(pattern):
            key = path.resolve()
            if key not in seen:
                seen.add(key)
                found.append(path)
    return found


def detect_format(path: Path, fmt: str = "auto") -> Format:
    """The reader for ``path``: ``fmt`` when explicit, else by extension (``.csv.gz`` is CSV)."""
    if fmt in ("csv", "parquet"):
        return "csv" if fmt == "csv" else "parquet"
    if fmt != "auto":
        raise SourceError(path, f"unknown format {fmt!r}; allowed: auto, csv, parquet")
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES) and not path.name.lower().endswith(".gz"):
        return "parquet"
    allowed = ", ".join([*CSV_SUFFIXES, *(s + ".gz" for s in CSV_SUFFIXES), *PARQUET_SUFFIXES])
    raise SourceError(path, f"cannot tell the format from the extension; allowed: {allowed}")


def read_header(
    path: Path, *, fmt: str = "auto", delimiter: str = "auto", encoding: str = "utf-8"
) -> list[str]:
    """The source's column names (trimmed), read cheaply so the mapping is checked before rows."""
    if detect_format(path, fmt) == "parquet":
        return list(_parquet_names(path))
    return list(_csv_layout(path, delimiter, encoding).names)


def iter_batches(
    path: Path,
    *,
    fmt: str = "auto",
    delimiter: str = "auto",
    encoding: str = "utf-8",
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> Iterator[SourceBatch]:
    """Stream ``path`` in batches of at most ``batch_rows`` records; memory stays flat."""
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    if detect_format(path, fmt) == "parquet":
        pieces: Iterable[tuple[pa.Table, pa.Array | None]] = _parquet_pieces(path, batch_rows)
    else:
        pieces = _csv_pieces(_csv_layout(path, delimiter, encoding))
    return _rebatch(pieces, batch_rows)


# --- sources -------------------------------------------------------------------------------


def _expand_one(pattern: str) -> list[Path]:
    path = Path(pattern)
    if path.is_dir():
        files = sorted(
            p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(SOURCE_SUFFIXES)
        )
        if not files:
            raise SourceError(pattern, f"directory has no {', '.join(SOURCE_SUFFIXES)} files")
        return files
    if path.is_file():
        return [path]
    if any(char in pattern for char in "*?["):
        matches = sorted(Path(m) for m in glob.glob(pattern, recursive=True))
        files = [m for m in matches if m.is_file()]
        if files:
            return files
        raise SourceError(pattern, "no file matches this pattern")
    raise SourceError(pattern, "no such file or directory")


def _checked_names(path: Path, raw: Sequence[str]) -> tuple[str, ...]:
    """Trim header names; empty or duplicate names make the source unreadable."""
    names = tuple(name.strip() for name in raw)
    empty = [str(i + 1) for i, name in enumerate(names) if not name]
    if empty:
        raise SourceError(path, f"header has empty column names at position(s) {', '.join(empty)}")
    repeated = [name for name, count in Counter(names).items() if count > 1]
    if repeated:
        raise SourceError(path, f"header repeats column names: {', '.join(map(repr, repeated))}")
    return names


# --- Parquet -------------------------------------------------------------------------------


def _open_parquet(path: Path) -> pq.ParquetFile:
    try:
        if path.stat().st_size == 0:
            raise SourceError(path, "file is empty")
        return pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise SourceError(path, f"cannot read as Parquet: {exc}") from exc


def _parquet_names(path: Path) -> tuple[str, ...]:
    with _open_parquet(path) as parquet:
        return _checked_names(path, parquet.schema_arrow.names)


def _parquet_pieces(path: Path, batch_rows: int) -> Iterator[tuple[pa.Table, None]]:
    with _open_parquet(path) as parquet:
        names = _checked_names(path, parquet.schema_arrow.names)
        try:
            for batch in parquet.iter_batches(batch_size=batch_rows):
                yield pa.Table.from_batches([batch]).rename_columns(names), None
        except (OSError, pa.ArrowException) as exc:
            raise SourceError(path, f"cannot read as Parquet: {exc}") from exc


# --- CSV layout: encoding, delimiter, header -----------------------------------------------


@dataclass(frozen=True)
class _CsvLayout:
    path: Path
    encoding: str  # as the mapping gave it, for messages
    delimiter: str
    python_encoding: str  # codec for Python's csv path (utf-8-sig for UTF-8: BOM stripped)
    arrow_encoding: str | None  # None: not ASCII-compatible, Python path only
    raw_names: tuple[str, ...]
    names: tuple[str, ...]

    @property
    def compressed(self) -> bool:
        return self.path.name.lower().endswith(".gz")


def _csv_layout(path: Path, delimiter: str, encoding: str) -> _CsvLayout:
    python_encoding, arrow_encoding = _codecs_for(path, encoding)
    sample, whole = _read_sample(path)
    if not sample:
        raise SourceError(path, "file is empty")
    try:
        decoder = codecs.getincrementaldecoder(python_encoding)(errors="strict")
        text = decoder.decode(sample, final=whole)
    except UnicodeDecodeError as exc:
        line = sample[: exc.start].count(b"\n") + 1
        raise SourceError(path, _decode_message(encoding, exc, line)) from exc
    if not whole:  # keep whole lines only
        cut = max(text.rfind("\n"), text.rfind("\r"))
        if cut < 0:
            raise SourceError(path, f"first line is longer than {SNIFF_BYTES // 1024} KB")
        text = text[: cut + 1]
    sep = _resolve_delimiter(path, delimiter, text)
    header = next((rec for rec in _records(text, sep) if rec), None)
    if header is None:
        raise SourceError(path, "file has no header (only blank lines)")
    if header[0].startswith("\ufeff"):
        header[0] = header[0][1:]
    names = _checked_names(path, header)
    return _CsvLayout(path, encoding, sep, python_encoding, arrow_encoding, tuple(header), names)


def _codecs_for(path: Path, encoding: str) -> tuple[str, str | None]:
    try:
        name = codecs.lookup(encoding).name
    except LookupError as exc:
        raise SourceError(path, f"unknown encoding {encoding!r}") from exc
    if name in ("utf-8", "utf-8-sig"):
        return "utf-8-sig", "utf8"
    probe = '\r\n",;\t|ab'
    try:
        ascii_compatible = probe.encode(name) == probe.encode("ascii")
    except (UnicodeError, LookupError):
        ascii_compatible = False
    return name, (name if ascii_compatible else None)


def _decode_message(encoding: str, exc: UnicodeDecodeError, line: int | None) -> str:
    byte = exc.object[exc.start : exc.start + 1].hex()
    where = f"line {line}" if line else "some line"
    hint = (
        "set `encoding: cp1252` (or latin-1) in the mapping's source block if this is a "
        "Windows/Excel export"
        if codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")
        else "check `encoding` in the mapping's source block"
    )
    return f"cannot decode as {encoding} (byte 0x{byte} on {where}); {hint}"


def _locate_decode_error(layout: _CsvLayout) -> str:
    """Find the first undecodable line (split on LF; only for ASCII-compatible encodings)."""
    if layout.arrow_encoding is not None:
        with _open_binary(layout.path) as stream:
            for line, raw in enumerate(stream, start=1):
                try:
                    raw.decode(layout.python_encoding)
                except UnicodeDecodeError as exc:
                    return _decode_message(layout.encoding, exc, line)
    return f"cannot decode as {layout.encoding}; check `encoding` in the mapping's source block"


def _open_binary(path: Path) -> BinaryIO:
    try:
        if path.name.lower().endswith(".gz"):
            return cast(BinaryIO, gzip.GzipFile(path, "rb"))
        return path.open("rb")
    except OSError as exc:
        raise SourceError(path, f"cannot open: {exc.strerror or exc}") from exc


def _read_sample(path: Path) -> tuple[bytes, bool]:
    """The first SNIFF_BYTES bytes (decompressed) and whether that is the whole file."""
    try:
        with _open_binary(path) as stream:
            sample = stream.read(SNIFF_BYTES + 1)
    except (OSError, EOFError) as exc:
        raise SourceError(path, f"cannot read: {exc}") from exc
    return sample[:SNIFF_BYTES], len(sample) <= SNIFF_BYTES


def _records(text: str, delimiter: str) -> Iterator[list[str]]:
    """Records of a text sample; stops quietly at a parse error."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        yield from reader
    except csv.Error:
        return


def _resolve_delimiter(path: Path, delimiter: str, text: str) -> str:
    delimiter = _DELIMITER_ALIASES.get(delimiter, delimiter)
    if delimiter != "auto":
        if len(delimiter) != 1 or delimiter in '"\r\n':
            raise SourceError(path, f"bad delimiter {delimiter!r}; allowed: auto or one character")
        return delimiter
    return _sniff_delimiter(text)


def _sniff_delimiter(text: str) -> str:
    """Among , ; tab |: the one that splits the header in most fields that the rows agree with."""
    best, best_score = ",", (0.0, 1)
    for candidate in DELIMITERS:
        counts = [len(rec) for rec in _records(text, candidate) if rec]
        if len(counts) > 2:
            counts.pop()  # may be cut short by the end of the sample
        if not counts or counts[0] < 2:
            continue
        agree = sum(count == counts[0] for count in counts) / len(counts)
        score = (agree, counts[0])
        if score > best_score:
            best, best_score = candidate, score
    return best


# --- CSV rows: fast path (pyarrow) and exact path (csv module) -----------------------------


class _MalformedRowFlag:
    """pyarrow ``invalid_row_handler`` that only notes that a malformed record was seen."""

    def __init__(self) -> None:
        self.seen = False

    def __call__(self, row: object) -> str:
        self.seen = True  # cannot raise: pyarrow would abort the read
        return "skip"


class _TailKeepingStream:
    """Binary stream that keeps the last bytes read, to check the file's last record."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.tail = b""
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._stream.read(size)
        if len(data) >= _TAIL_BYTES:
            self.tail = data[-_TAIL_BYTES:]
        elif data:
            self.tail = (self.tail + data)[-_TAIL_BYTES:]
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True
        self._stream.close()


@dataclass
class _ArrowPass:
    """What the pyarrow pass handed out, and whether the exact path must read the rest."""

    rows: int = 0  # records handed out; all of them clean and numbered right
    incomplete: bool = False


def _csv_pieces(layout: _CsvLayout) -> Iterator[tuple[pa.Table, pa.Array | None]]:
    skip = 0
    if layout.arrow_encoding is not None:
        outcome = _ArrowPass()
        for table in _arrow_pieces(layout, outcome):
            yield table, None
        if not outcome.incomplete:
            return
        skip = outcome.rows
    yield from _python_pieces(layout, skip)


def _arrow_pieces(layout: _CsvLayout, outcome: _ArrowPass) -> Iterator[pa.Table]:
    """Clean pieces from pyarrow; sets ``outcome.incomplete`` where the exact path must take over.

    The last piece is held back until the end: its last record is suspect when it holds a line
    break (maybe a quote left open that swallowed the rest of the file) or an open quote.
    """
    flag = _MalformedRowFlag()
    compression = "gzip" if layout.compressed else None
    try:
        stream = _TailKeepingStream(pa.input_stream(str(layout.path), compression=compression))
    except (OSError, pa.ArrowException) as exc:
        raise SourceError(layout.path, f"cannot open: {exc}") from exc
    held: pa.Table | None = None
    try:
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(encoding=layout.arrow_encoding),
            parse_options=pacsv.ParseOptions(
                delimiter=layout.delimiter, newlines_in_values=True, invalid_row_handler=flag
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(layout.raw_names, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        expected = pa.schema([(name, pa.string()) for name in layout.raw_names])
        if not reader.schema.equals(expected):
            outcome.incomplete = True
            return
        for batch in reader:
            if flag.seen:
                outcome.incomplete = True
                break
            if batch.num_rows:
                if held is not None:
                    outcome.rows += held.num_rows
                    yield held
                held = pa.Table.from_batches([batch]).rename_columns(layout.names)
        if flag.seen:  # in a block that gave no batch at all
            outcome.incomplete = True
    except (pa.ArrowException, UnicodeDecodeError):
        outcome.incomplete = True
    finally:
        stream.close()
    if held is not None and (outcome.incomplete or not _last_record_suspect(held, stream, layout)):
        outcome.rows += held.num_rows
        yield held
    elif held is not None:
        outcome.incomplete = True


def _last_record_suspect(table: pa.Table, stream: _TailKeepingStream, layout: _CsvLayout) -> bool:
    """Whether the file's last record may hold a quote left open at the end of the file."""
    for column in table.columns:
        value = column[-1].as_py()
        if value and ("\n" in value or "\r" in value):
            return True
    text = stream.tail.decode(layout.python_encoding, errors="replace")
    if text.endswith(("\n", "\r")):
        return False  # an open quote would have swallowed the final line break
    cut = max(text.rfind("\n"), text.rfind("\r"))
    if cut < 0 and len(stream.tail) >= _TAIL_BYTES:
        return True  # last line longer than the tail: cannot tell
    return _ends_inside_quotes(text[cut + 1 :], layout.delimiter)


def _ends_inside_quotes(raw: str, delimiter: str) -> bool:
    """Whether a record's raw text ends inside a quoted field (the csv module's lenient rules)."""
    start, plain, quoted, quote_in_quoted = range(4)
    state = start
    for char in raw:
        if state == quoted:
            if char == '"':
                state = quote_in_quoted
        elif char == delimiter or char in "\r\n":
            state = start
        elif state in (start, quote_in_quoted):
            state = quoted if char == '"' else plain
    return state == quoted


# Fed to the csv module after the last line. A file that ends cleanly leaves it as a record of
# its own (or, without a final line break, glued to the last field as MARK + '"'). A quote still
# open at the end swallows MARK and is closed by the '"': that field ends in MARK alone.
_EOF_MARK = "\x00lmssyncendoffile\x00"
_EOF_GLUED = _EOF_MARK + '"'
_UNCLOSED = "quoted field is never closed (runs to the end of the file)"


def _python_pieces(layout: _CsvLayout, skip: int) -> Iterator[tuple[pa.Table, pa.Array]]:
    """Every record after the first ``skip``, malformed ones included with their message."""
    width = len(layout.names)
    rows: list[Sequence[str | None]] = []
    errors: list[str | None] = []
    limit = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)  # a quote left open may swallow megabytes into one field
    text = io.TextIOWrapper(_open_binary(layout.path), encoding=layout.python_encoding, newline="")
    try:
        lines = itertools.chain(text, [_EOF_GLUED + "\n"])
        reader = csv.reader(lines, delimiter=layout.delimiter)
        number = end_line = 0
        header_seen = False
        for record in reader:
            line, end_line = end_line + 1, reader.line_num
            if not record:
                continue
            error = None
            if record[-1].endswith(_EOF_GLUED):
                if record == [_EOF_GLUED]:
                    break
                record[-1] = record[-1].removesuffix(_EOF_GLUED)
            elif record[-1].endswith(_EOF_MARK):
                record[-1] = record[-1].removesuffix(_EOF_MARK)
                error = f"line {line}: {_UNCLOSED}"
            if not header_seen:
                header_seen = True
                continue
            if width > 1 and len(record) == 1 and not record[0].strip():
                continue  # a line of spaces is blank too
            number += 1
            if number <= skip:
                continue
            if len(record) != width:
                error = error or f"line {line}: expected {width} fields, found {len(record)}"
                rows.append([*record[:width], *[None] * (width - len(record))])
            else:
                rows.append(record)
            errors.append(error)
            if len(rows) >= _PYTHON_PIECE_ROWS:
                yield _python_piece(rows, errors, layout.names)
                rows, errors = [], []
    except UnicodeDecodeError as exc:
        raise SourceError(layout.path, _locate_decode_error(layout)) from exc
    except (OSError, EOFError, csv.Error) as exc:
        raise SourceError(layout.path, f"cannot read: {exc}") from exc
    finally:
        csv.field_size_limit(limit)
        text.close()
    if rows:
        yield _python_piece(rows, errors, layout.names)


def _python_piece(
    rows: list[Sequence[str | None]], errors: list[str | None], names: Sequence[str]
) -> tuple[pa.Table, pa.Array]:
    columns = [pa.array(list(column), pa.string()) for column in zip(*rows, strict=True)]
    return pa.Table.from_arrays(columns, names=list(names)), pa.array(errors, pa.string())


# --- batching ------------------------------------------------------------------------------


def _rebatch(
    pieces: Iterable[tuple[pa.Table, pa.Array | None]], batch_rows: int
) -> Iterator[SourceBatch]:
    """Cut pieces into batches of ``batch_rows`` records, numbering records from 1."""
    buffer: list[tuple[pa.Table, pa.Array | None]] = []
    buffered = 0
    first_row = 1
    for table, errors in pieces:
        if not table.num_rows:
            continue
        buffer.append((table, errors))
        buffered += table.num_rows
        while buffered >= batch_rows:
            table_all, errors_all = _concat(buffer)
            head_errors = None if errors_all is None else errors_all.slice(0, batch_rows)
            yield _batch(table_all.slice(0, batch_rows), head_errors, first_row)
            rest = buffered - batch_rows
            buffer = []
            if rest:
                rest_errors = None if errors_all is None else errors_all.slice(batch_rows)
                buffer.append((table_all.slice(batch_rows), rest_errors))
            buffered = rest
            first_row += batch_rows
    if buffered:
        table_all, errors_all = _concat(buffer)
        yield _batch(table_all, errors_all, first_row)


def _concat(buffer: list[tuple[pa.Table, pa.Array | None]]) -> tuple[pa.Table, pa.Array | None]:
    table = buffer[0][0] if len(buffer) == 1 else pa.concat_tables([t for t, _ in buffer])
    if all(errors is None for _, errors in buffer):
        return table, None
    parts = [pa.nulls(t.num_rows, pa.string()) if e is None else e for t, e in buffer]
    return table, pa.concat_arrays(parts)


def _batch(table: pa.Table, errors: pa.Array | None, first_row: int) -> SourceBatch:
    length = table.num_rows
    numbers = np.arange(first_row, first_row + length, dtype=np.int64)
    rows = pa.Array.from_buffers(pa.int64(), length, [None, pa.py_buffer(numbers)])  # no pandas
    read_errors = pa.nulls(length, pa.string()) if errors is None else errors
    return SourceBatch(table=table, rows=rows, read_errors=read_errors)
