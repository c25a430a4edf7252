"""Measures over a column's values: pattern share, plain numbers, a probe, rejected rows."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from transforms.converted import Converted
from transforms.masks import count_true

NUMERIC = r"^[+-]?(?:\d+(?:[.,]\d+)?|[.,]\d+)$"
GOOD_SHARE = 0.8  # share of non-blank rows a kind's converter must accept
_PROBE_VALUES = 200  # distinct values each candidate format is tried on


def floats(text: pa.Array) -> list[float]:
    """The values of ``text`` that are plain numbers (decimal comma allowed), as floats."""
    numeric = pc.filter(text, pc.match_substring_regex(text, NUMERIC))
    return pc.cast(pc.replace_substring(numeric, ",", "."), pa.float64()).to_pylist()


def share(text: pa.Array, pattern: str) -> float:
    """Share of the values of ``text`` that match the regex ``pattern`` (0 for no values)."""
    if not len(text):
        return 0.0
    return float((pc.sum(pc.match_substring_regex(text, pattern)).as_py() or 0) / len(text))


def probe_values(present: pa.Array) -> pa.Array:
    """At most a few hundred distinct values, evenly spread, to try candidate formats on."""
    unique = pc.unique(present)
    if len(unique) <= _PROBE_VALUES:
        return unique
    step = len(unique) / _PROBE_VALUES
    return unique.take(pa.array([int(i * step) for i in range(_PROBE_VALUES)]))


def rejected_rows(converted: Converted) -> int:
    """How many rows a converter rejected."""
    return count_true(converted.invalid)
