"""Read a source's column names cheaply, so the mapping is checked before any row is read."""

from __future__ import annotations

from pathlib import Path

from pipelines.source.csv_layout import csv_layout
from pipelines.source.parquet_reader import parquet_names
from pipelines.source.source_files import detect_format

__all__ = ["read_header"]


def read_header(
    path: Path, *, fmt: str = "auto", delimiter: str = "auto", encoding: str = "utf-8"
) -> list[str]:
    """The source's column names (trimmed), read cheaply so the mapping is checked before rows."""
    if detect_format(path, fmt) == "parquet":
        return list(parquet_names(path))
    return list(csv_layout(path, delimiter, encoding).names)
