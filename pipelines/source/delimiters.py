"""Resolve a CSV source's delimiter: the mapping's choice, or sniffed from the first lines."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

from pipelines.core.errors import SourceError

__all__ = ["DELIMITERS", "records", "resolve_delimiter"]

DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_ALIASES = {"\\t": "\t", "tab": "\t"}


def records(text: str, delimiter: str) -> Iterator[list[str]]:
    """Records of a text sample; stops quietly at a parse error."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        yield from reader
    except csv.Error:
        return


def resolve_delimiter(path: Path, delimiter: str, text: str) -> str:
    """``delimiter`` checked (``tab`` and ``\\t`` mean a tab), or sniffed from ``text`` when auto."""
    delimiter = _DELIMITER_ALIASES.get(delimiter, delimiter)
    if delimiter != "auto":
        if len(delimiter) != 1 or delimiter in '"\r\n':
            raise SourceError(path, f"bad delimiter {delimiter!r}; allowed: auto or one character")
        return delimiter
    return _sniff_delimiter(text)


def _sniff_delimiter(text: str) -> str:
    """Among , ; tab |: the one that splits the header in most fields that the rows agree with."""
    best, best_score = ",", (0.0, 1)
    for candidate in DELIMITERS:
        counts = [len(rec) for rec in records(text, candidate) if rec]
        if len(counts) > 2:
            counts.pop()  # may be cut short by the end of the sample
        if not counts or counts[0] < 2:
            continue
        agree = sum(count == counts[0] for count in counts) / len(counts)
        score = (agree, counts[0])
        if score > best_score:
            best, best_score = candidate, score
    return best
