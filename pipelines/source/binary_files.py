"""Open a source file as a binary stream, decompressing ``.gz`` files on the fly."""

from __future__ import annotations

import gzip
import io
import zlib
from pathlib import Path
from typing import BinaryIO, cast

from pipelines.core.errors import SourceError

__all__ = ["STREAM_BREAKS", "open_binary"]

# What reading a broken gzip stream raises (gzip.BadGzipFile is an OSError).
STREAM_BREAKS = (EOFError, zlib.error, OSError)


def open_binary(path: Path, limit: int | None = None) -> BinaryIO:
    """The file's (decompressed) bytes, only the first ``limit`` of them when given.

    A file that cannot be opened is a ``SourceError``.
    """
    try:
        if path.name.lower().endswith(".gz"):
            stream = cast(BinaryIO, gzip.GzipFile(path, "rb"))
        else:
            stream = path.open("rb")
    except OSError as exc:
        raise SourceError(path, f"cannot open: {exc.strerror or exc}") from exc
    if limit is None:
        return stream
    return cast(BinaryIO, io.BufferedReader(_FirstBytes(stream, limit)))


class _FirstBytes(io.RawIOBase):
    """The first ``limit`` bytes of a stream: a broken .gz read up to where it can be trusted."""

    def __init__(self, stream: BinaryIO, limit: int) -> None:
        self._stream = stream
        self._left = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._left <= 0:
            return 0
        try:
            data = self._stream.read(min(len(buffer), self._left))
        except STREAM_BREAKS:  # cannot happen before the limit; if it does, the bytes end here
            self._left = 0
            return 0
        buffer[: len(data)] = data
        self._left -= len(data)
        return len(data)

    def close(self) -> None:
        self._stream.close()
        super().close()
