"""Which files a SOURCE argument names (files, directories, globs), and which reader each takes."""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pipelines.core.errors import SourceError
from pipelines.source.object_store import is_url, staged

__all__ = [
    "CSV_SUFFIXES",
    "PARQUET_SUFFIXES",
    "SOURCE_SUFFIXES",
    "Format",
    "detect_format",
    "expand_sources",
]

SOURCE_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")  # what a directory source contributes
CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")

Format = Literal["csv", "parquet"]


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


def _expand_one(pattern: str) -> list[Path]:
    if is_url(pattern):
        return staged(pattern, SOURCE_SUFFIXES)
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
