"""Which duration spelling and unit fit a column: self-describing values, bare numbers' unit."""

from __future__ import annotations

import math
import statistics

import pyarrow as pa
import pyarrow.compute as pc

from transforms.durations import parse_duration, to_iso_durations
from transforms.export_profile.column_names import DURATION_UNITS, DURATION_WORDS
from transforms.export_profile.measures import (
    GOOD_SHARE,
    NUMERIC,
    floats,
    probe_values,
    rejected_rows,
)


def guess_duration(words: set[str], present: pa.Array) -> dict[str, object] | None:
    """Self-describing durations (``1h 30m``, ``PT1H``, ``1:30``), bare numbers given a unit."""
    described = to_iso_durations(present, None)
    bare = pc.and_(described.invalid, pc.match_substring_regex(present, NUMERIC))
    n_bare = pc.sum(bare).as_py() or 0
    n_good = len(present) - rejected_rows(described)
    named = bool(DURATION_WORDS & words or {"total", "time"} <= words)
    if n_good == 0 or (n_good + n_bare < GOOD_SHARE * len(present)):
        return None
    if not named and n_good < GOOD_SHARE * len(present):
        return None
    if not n_bare:
        return {"kind": "duration", "errors": rejected_rows(described)}
    good = pc.unique(pc.filter(present, pc.invert(described.invalid)))
    seconds = [_seconds(v) for v in probe_values(good).to_pylist()]
    bare_numbers = floats(pc.filter(present, bare))
    unit, note = _unit_for(words, bare_numbers, [s for s in seconds if s is not None])
    errors = rejected_rows(to_iso_durations(present, unit))
    return {"kind": "duration", "unit": unit, "errors": errors, "note": note}


def duration_of_numbers(
    words: set[str], present: pa.Array, numbers: list[float]
) -> dict[str, object]:
    """The duration guess for a column of bare numbers: their unit and the rows it rejects."""
    unit, note = _unit_for(words, numbers, [])
    errors = rejected_rows(to_iso_durations(present, unit))
    return {"kind": "duration", "unit": unit, "errors": errors, "note": note}


def _unit_for(
    words: set[str], numbers: list[float], described_seconds: list[float]
) -> tuple[str, str | None]:
    """The unit of bare numbers: from the name, else closest to the self-describing values."""
    for word in sorted(words):
        if word in DURATION_UNITS:
            return DURATION_UNITS[word], None
    note = "unit of bare numbers guessed from their size"
    if not numbers:
        return "minutes", note
    median = statistics.median(numbers)
    if described_seconds and median > 0:
        target = statistics.median(described_seconds)
        per_unit = {"seconds": 1, "minutes": 60, "hours": 3600}
        unit = min(per_unit, key=lambda u: abs(_log(median * per_unit[u]) - _log(target)))
        return unit, note
    if median <= 24 and any(n != int(n) for n in numbers):
        return "hours", note
    return ("minutes" if median <= 600 else "seconds"), note


def _seconds(text: str) -> float | None:
    try:
        return float(parse_duration(text, None))
    except ValueError:
        return None


def _log(x: float) -> float:
    return math.log(max(x, 1e-9))
