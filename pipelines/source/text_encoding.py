"""Which codecs read a CSV source in a given encoding, and what to say when its bytes do not decode."""

from __future__ import annotations

import codecs
from pathlib import Path

from pipelines.core.errors import SourceError

__all__ = ["BYTE_ORDER_MARKS", "codecs_for", "decode_message"]

BYTE_ORDER_MARKS = (  # UTF-32 LE first: it begins with the UTF-16 LE mark
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def codecs_for(path: Path, encoding: str, head: bytes) -> tuple[str, str | None]:
    """The codec for Python's csv path and for pyarrow (None: not ASCII-compatible, Python only);
    ``head``: the file's first bytes, whose UTF-16/32 byte-order mark decides under utf-8."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError as exc:
        raise SourceError(path, f"unknown encoding {encoding!r}") from exc
    if name in ("utf-8", "utf-8-sig"):
        # a UTF-16/32 mark is never UTF-8 text: the file says what it is (Excel's "Unicode text")
        marked = next((codec for mark, codec in BYTE_ORDER_MARKS if head.startswith(mark)), None)
        return (marked, None) if marked else ("utf-8-sig", "utf8")
    probe = '\r\n",;\t|ab'
    try:
        ascii_compatible = probe.encode(name) == probe.encode("ascii")
    except (UnicodeError, LookupError):
        ascii_compatible = False
    return name, (name if ascii_compatible else None)


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
