"""Which codecs read a CSV source in a given encoding, and what to say when its bytes do not decode."""

from __future__ import annotations

import codecs
from pathlib import Path

from pipelines.core.errors import SourceError
from pipelines.source.binary_files import STREAM_BREAKS, open_binary

__all__ = ["BYTE_ORDER_MARKS", "codecs_for", "decode_message"]

BYTE_ORDER_MARKS = (  # UTF-32 LE first: it begins with the UTF-16 LE mark
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def codecs_for(path: Path, encoding: str) -> tuple[str, str | None]:
    """The codec for Python's csv path and for pyarrow (None: not ASCII-compatible, Python only)."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError as exc:
        raise SourceError(path, f"unknown encoding {encoding!r}") from exc
    if name in ("utf-8", "utf-8-sig"):
        marked = _marked_encoding(path)  # a UTF-16/32 mark is never UTF-8 text: the file says
        return (marked, None) if marked else ("utf-8-sig", "utf8")
    probe = '\r\n",;\t|ab'
    try:
        ascii_compatible = probe.encode(name) == probe.encode("ascii")
    except (UnicodeError, LookupError):
        ascii_compatible = False
    return name, (name if ascii_compatible else None)


def _marked_encoding(path: Path) -> str | None:
    """The UTF-16/32 codec a byte-order mark at the start of the file names (Excel's "Unicode
    text"), else None; a stream that breaks this early is left to the reader to report."""
    try:
        with open_binary(path) as stream:
            head = stream.read(4)
    except STREAM_BREAKS:
        return None
    return next((name for mark, name in BYTE_ORDER_MARKS if head.startswith(mark)), None)


def decode_message(encoding: str, exc: UnicodeDecodeError, line: int | None) -> str:
    """Where a source failed to decode, with a hint at the mapping setting to change."""
    byte = exc.object[exc.start : exc.start + 1].hex()
    where = f"line {line}" if line else "some line"
    hint = (
        "set `encoding: cp1252` (or latin-1) in the mapping's source block if this is a "
        "Windows/Excel export"
        if codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")
        else "check `encoding` in the mapping's source block"
    )
    return f"cannot decode as {encoding} (byte 0x{byte} on {where}); {hint}"
