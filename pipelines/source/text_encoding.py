"""Which codecs read a CSV source in a given encoding, and what to say when its bytes do not decode."""

from __future__ import annotations

import codecs
from pathlib import Path

from pipelines.core.errors import SourceError

__all__ = ["codecs_for", "decode_message"]


def codecs_for(path: Path, encoding: str) -> tuple[str, str | None]:
    """The codec for Python's csv path and for pyarrow (None: not ASCII-compatible, Python only)."""
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
