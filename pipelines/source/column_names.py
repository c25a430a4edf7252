"""Header checks shared by the CSV and Parquet readers: names are trimmed, non-empty and unique."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from pipelines.core.errors import SourceError

__all__ = ["checked_names"]


def checked_names(path: Path, raw: Sequence[str]) -> tuple[str, ...]:
    """Trim header names; empty or duplicate names make the source unreadable."""
    names = tuple(name.strip() for name in raw)
    empty = [str(i + 1) for i, name in enumerate(names) if not name]
    if empty:
        raise SourceError(path, f"header has empty column names at position(s) {', '.join(empty)}")
    repeated = [name for name, count in Counter(names).items() if count > 1]
    if repeated:
        raise SourceError(path, f"header repeats column names: {', '.join(map(repr, repeated))}")
    return names
