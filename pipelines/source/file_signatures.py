"""Files given as CSV that are not CSV text in the mapping's encoding, told by their first bytes:
one line saying what the file is and what to do, not a decode error or a header of garbage."""

from __future__ import annotations

import re
from pathlib import Path

from pipelines.core.errors import SourceError
from pipelines.source.text_encoding import BYTE_ORDER_MARKS

__all__ = ["refuse_non_text"]

_SIGNATURES = (
    (b"\x1f\x8b", "holds gzip-compressed data: name it *.csv.gz (read as is) or decompress it"),
    (b"PAR1", "is a Parquet file: name it *.parquet or set `format: parquet` in the mapping"),
    (b"PK\x03\x04", "is a ZIP archive (an Excel .xlsx workbook?): save the sheet as CSV"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "is an Excel 97-2003 workbook: save the sheet as CSV"),
)


def refuse_non_text(path: Path, sample: bytes, python_encoding: str) -> None:
    """Raise a ``SourceError`` when the first bytes show a binary format, Excel's ``sep=;`` line,
    a UTF-16/32 byte-order mark the mapping's encoding does not expect, or NUL bytes in the
    header line of an 8-bit encoding."""
    for magic, what in _SIGNATURES:
        # "PAR1" could begin a header: a Parquet file has binary bytes right after it
        if sample.startswith(magic) and _binary(sample[len(magic) : 64]):
            raise SourceError(path, f"not CSV text: the file {what}")
    excel_hint = re.match(rb"(?:\xef\xbb\xbf)?sep=(.)\r?\n", sample)
    if excel_hint:
        hint = f"sep={excel_hint[1].decode('latin-1')}"
        raise SourceError(path, f"first line is Excel's {hint!r} hint, not the header: delete it")
    wide = python_encoding.startswith(("utf-16", "utf-32"))
    for bom, name in BYTE_ORDER_MARKS:
        if sample.startswith(bom) and not wide:
            hint = f"set `encoding: {name}` in the mapping's source block"
            raise SourceError(path, f"file starts with a {name.upper()} byte-order mark: {hint}")
    if not wide and b"\x00" in re.split(rb"[\r\n]", sample, maxsplit=1)[0]:
        raise SourceError(
            path,
            "header line holds NUL bytes: UTF-16 text without a byte-order mark (set "
            "`encoding: utf-16-le` or `utf-16-be` in the mapping's source block) or not text",
        )


def _binary(head: bytes) -> bool:
    """Whether these bytes hold a control character that text does not (tab, CR, LF, FF do)."""
    return any(byte < 0x20 and byte not in b"\t\n\r\x0c" for byte in head)
