"""Check a whole ``.gz`` source before reading it: where its stream breaks, and how much to trust.

A truncated stream decodes exactly up to the cut. A corrupt one does not: deflate decodes on
through flipped bytes and only the member's CRC at its end tells, so no byte of a member that
fails its check is trusted, only those of the intact members before it. Either way the bytes to
trust end at a line break: a record cut at the break is no record.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pipelines.core.errors import SourceError

__all__ = ["StreamBreak", "find_break"]

_GZIP_WBITS = 31  # zlib reads the gzip header and checks the CRC and length of each member
_READ_BYTES = 1 << 20
_OUT_BYTES = 1 << 23  # decompressed per step: memory stays flat on highly compressed input
_TRUNCATED = "its gzip stream ends early (cut after {size:,} uncompressed bytes)"
_CORRUPT = "its gzip stream is damaged ({error}; the damaged part is not read)"
_AFTER = "; this record and all after it are missing: land the complete file again"


@dataclass(frozen=True)
class StreamBreak:
    """Where a source's bytes break off: how many (decompressed) bytes to read, and why."""

    good_bytes: int  # up to and including a line break
    reason: str  # what broke, for messages

    @property
    def message(self) -> str:
        """The read error of the record at the break (and why the source is incomplete)."""
        return f"file is truncated or corrupt: {self.reason}{_AFTER}"


class _Scan:
    """Running totals of one pass over the decompressed bytes."""

    def __init__(self) -> None:
        self.size = 0  # bytes decoded so far
        self.line_end = 0  # just past the last line break decoded
        self.trusted = 0  # line_end when the last intact member ended

    def take(self, out: bytes) -> None:
        cut = max(out.rfind(b"\n"), out.rfind(b"\r"))
        if cut >= 0:
            self.line_end = self.size + cut + 1
        self.size += len(out)


def find_break(path: Path) -> StreamBreak | None:
    """Decompress ``path`` once, output discarded: None when every member is intact."""
    scan = _Scan()
    try:
        with path.open("rb") as raw:
            problem = _scan_members(raw, scan)
    except OSError as exc:
        raise SourceError(path, f"cannot read: {exc.strerror or exc}") from exc
    if problem is None:
        return None
    truncated, detail = problem
    good = scan.line_end if truncated else scan.trusted
    reason = _TRUNCATED.format(size=scan.size) if truncated else _CORRUPT.format(error=detail)
    return StreamBreak(good, reason)


def _scan_members(raw: BinaryIO, scan: _Scan) -> tuple[bool, str] | None:
    """Decode member after member; (truncated?, detail) at a break, None at a clean end."""
    decoder: zlib._Decompress | None = None
    data = b""
    while True:
        if not data:
            data = raw.read(_READ_BYTES)
            if not data:
                return None if decoder is None else _at_end(decoder, scan)
        if decoder is None:
            data = data.lstrip(b"\x00")  # zero padding between members is allowed
            if not data:
                continue
            decoder = zlib.decompressobj(_GZIP_WBITS)
        try:
            scan.take(decoder.decompress(data, _OUT_BYTES))
        except zlib.error as exc:
            return False, str(exc)
        data = decoder.unconsumed_tail
        if decoder.eof:
            data = decoder.unused_data
            scan.trusted = scan.line_end
            decoder = None


def _at_end(decoder: zlib._Decompress, scan: _Scan) -> tuple[bool, str] | None:
    """The file ended inside a member: decode what is still pending; ended early unless it ends."""
    try:
        scan.take(decoder.flush())
    except zlib.error as exc:
        return False, str(exc)
    if decoder.eof:
        scan.trusted = scan.line_end
        return None
    return True, ""
