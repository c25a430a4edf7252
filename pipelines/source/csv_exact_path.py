"""The exact CSV path: Python's ``csv`` module, which sees every record, malformed ones included.

Slower than pyarrow; it reads what the fast path could not vouch for, and whole files in
encodings that are not ASCII-compatible (UTF-16/32).
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterator, Sequence

import pyarrow as pa

from pipelines.core.errors import SourceError
from pipelines.source.binary_files import open_binary
from pipelines.source.csv_layout import CsvLayout
from pipelines.source.gzip_check import StreamBreak
from pipelines.source.text_encoding import decode_message

__all__ = ["python_pieces"]

_PYTHON_PIECE_ROWS = 10_000

# Fed to the csv module after the last line. A file that ends cleanly leaves it as a record of
# its own (or, without a final line break, glued to the last field as MARK + '"'). A quote still
# open at the end swallows MARK and is closed by the '"': that field ends in MARK alone.
_EOF_MARK = "\x00lmssyncendoffile\x00"
_EOF_GLUED = _EOF_MARK + '"'
_UNCLOSED = "quoted field is never closed (runs to the end of the file)"


def python_pieces(
    layout: CsvLayout, skip: int, broken: StreamBreak | None
) -> Iterator[tuple[pa.Table, pa.Array]]:
    """Every record after the first ``skip``, malformed ones included with their message.

    A ``broken`` .gz is read up to its last trusted line break (the break record is not ours).
    """
    width = len(layout.names)
    rows: list[Sequence[str | None]] = []
    errors: list[str | None] = []
    limit = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)  # a quote left open may swallow megabytes into one field
    good_bytes = None if broken is None else broken.good_bytes
    binary = open_binary(layout.path, good_bytes)
    text = io.TextIOWrapper(binary, encoding=layout.python_encoding, newline="")
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
                if broken is not None:
                    break  # a quoted value cut at the break: the break record stands for it
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
        raise SourceError(layout.path, _locate_decode_error(layout, good_bytes)) from exc
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


def _locate_decode_error(layout: CsvLayout, good_bytes: int | None) -> str:
    """Find the first undecodable line (split on LF; only for ASCII-compatible encodings)."""
    if layout.arrow_encoding is not None:
        with open_binary(layout.path, good_bytes) as stream:
            for line, raw in enumerate(stream, start=1):
                try:
                    raw.decode(layout.python_encoding)
                except UnicodeDecodeError as exc:
                    return decode_message(layout.encoding, exc, line)
    return f"cannot decode as {layout.encoding}; check `encoding` in the mapping's source block"
