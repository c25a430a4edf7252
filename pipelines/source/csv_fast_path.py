"""The fast CSV path: pyarrow's streaming reader, stopping where the exact path must take over.

pyarrow drops malformed records without saying where they were and silently accepts a quoted
field left open at the end of the file, so the pass stops at the first sign of either.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from pipelines.core.errors import SourceError
from pipelines.source.binary_files import open_binary
from pipelines.source.csv_layout import CsvLayout
from pipelines.source.gzip_check import StreamBreak

__all__ = ["ArrowPass", "arrow_pieces"]

_TAIL_BYTES = 64 * 1024  # kept from the end of the stream to check the last record


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
class ArrowPass:
    """What the pyarrow pass handed out, and whether the exact path must read the rest."""

    rows: int = 0  # records handed out; all of them clean and numbered right
    incomplete: bool = False


def arrow_pieces(
    layout: CsvLayout, outcome: ArrowPass, broken: StreamBreak | None = None
) -> Iterator[pa.Table]:
    """Clean pieces from pyarrow; sets ``outcome.incomplete`` where the exact path must take over.

    The last piece is held back until the end: its last record is suspect when it holds a line
    break (maybe a quote left open that swallowed the rest of the file) or an open quote.
    A ``broken`` .gz is read up to its last trusted line break only.
    """
    flag = _MalformedRowFlag()
    stream = _TailKeepingStream(_open(layout, broken))
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
    except (pa.ArrowException, UnicodeDecodeError, OSError):  # OSError: a stream that broke
        outcome.incomplete = True
    finally:
        stream.close()
    if held is not None and (outcome.incomplete or not _last_record_suspect(held, stream, layout)):
        outcome.rows += held.num_rows
        yield held
    elif held is not None:
        outcome.incomplete = True


def _open(layout: CsvLayout, broken: StreamBreak | None) -> Any:
    """The source's bytes: pyarrow's own (de)compressing stream, or the trusted part of a break."""
    if broken is not None:
        return open_binary(layout.path, broken.good_bytes)
    compression = "gzip" if layout.compressed else None
    try:
        return pa.input_stream(str(layout.path), compression=compression)
    except (OSError, pa.ArrowException) as exc:
        raise SourceError(layout.path, f"cannot open: {exc}") from exc


def _last_record_suspect(table: pa.Table, stream: _TailKeepingStream, layout: CsvLayout) -> bool:
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
