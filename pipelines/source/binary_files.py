"""Open a source file as a binary stream, decompressing ``.gz`` files on the fly."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import BinaryIO, cast

from pipelines.core.errors import SourceError

__all__ = ["open_binary"]


def open_binary(path: Path) -> BinaryIO:
    """The file's (decompressed) bytes; a file that cannot be opened is a ``SourceError``."""
    try:
        if path.name.lower().endswith(".gz"):
            return cast(BinaryIO, gzip.GzipFile(path, "rb"))
        return path.open("rb")
    except OSError as exc:
        raise SourceError(path, f"cannot open: {exc.strerror or exc}") from exc
