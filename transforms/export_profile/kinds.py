"""A column's kind from its name's words and its values: the checks in order, text last."""

from __future__ import annotations

import statistics

import pyarrow as pa
import pyarrow.compute as pc

from transforms.export_profile.column_names import (
    DATE_WORDS,
    DURATION_WORDS,
    SCORE_WORDS,
    STATUS_WORDS,
    is_id_name,
)
from transforms.export_profile.duration_units import duration_of_numbers, guess_duration
from transforms.export_profile.measures import GOOD_SHARE, NUMERIC, floats, share
from transforms.export_profile.score_scales import best_scale
from transforms.export_profile.statuses import status_class
from transforms.export_profile.timestamp_formats import (
    EPOCH_RANGES,
    best_timestamp,
    timestamp_errors,
    timestamp_guess,
)

_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
_DATE_SHAPE = r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}|[A-Za-z]{3} \d{1,2},? \d{4}|\d{1,2}[- ][A-Za-z]{3}"
_SCORE_MARK = r"%|\d\s*/\s*\d+(?:[.,]\d+)?$"


def guess_kind(words: set[str], present: pa.Array, counts: pa.Array) -> dict[str, object]:
    """The guessed kind and converter settings of a column from its non-blank values."""
    kind = present.type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return {"kind": "timestamp", "format": "typed"}
    if pa.types.is_duration(kind):
        return {"kind": "duration"}
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return _guess_number(words, present, pc.cast(present, pa.string()))
    if not pa.types.is_string(kind):
        return {"kind": "text"}
    n = len(present)
    if share(present, _EMAIL) >= GOOD_SHARE:
        return {"kind": "email"}
    if share(present, NUMERIC) >= 0.9:
        return _guess_number(words, present, present)
    if share(present, _DATE_SHAPE) >= 0.5 or DATE_WORDS & (words - {"time"}):
        stamp = best_timestamp(present)
        if stamp is not None and n - stamp[1] >= GOOD_SHARE * n:
            return timestamp_guess(stamp[0], stamp[1], present)
    if share(present, _SCORE_MARK) >= 0.5 or (SCORE_WORDS & words and "grade" not in words):
        scale, errors = best_scale(present)
        if n - errors >= GOOD_SHARE * n:
            return {"kind": "score", "scale": scale, "errors": errors}
    duration = guess_duration(words, present)
    if duration is not None:
        return duration
    return _guess_text(words, present, counts)


def _guess_number(words: set[str], present: pa.Array, text: pa.Array) -> dict[str, object]:
    """A column of numbers (typed or as text): id, epoch timestamp, duration, score or number."""
    numbers = floats(text)
    if is_id_name(words):
        return {"kind": "id"}
    if DURATION_WORDS & words or {"total", "time"} <= words:
        return duration_of_numbers(words, present, numbers)
    if share(text, r"^0\d") > 0:  # leading zeros: an id, not a number
        return {"kind": "id"}
    if SCORE_WORDS & words:
        scale, errors = best_scale(text)
        return {"kind": "score", "scale": scale, "errors": errors}
    median = statistics.median(numbers) if numbers else 0.0
    for fmt, low, high in EPOCH_RANGES:
        named = bool(DATE_WORDS & words)
        if low <= median <= high and (named or fmt != "excel_serial"):
            errors = timestamp_errors(present, fmt)
            if errors <= (1 - GOOD_SHARE) * len(present):
                note = None if named else "read as a date from the size of its numbers"
                return {"kind": "timestamp", "format": fmt, "errors": errors, "note": note}
    return {"kind": "number"}


def _guess_text(words: set[str], present: pa.Array, counts: pa.Array) -> dict[str, object]:
    n, distinct = len(present), len(counts)
    spaced = share(present, r"\s")
    if is_id_name(words) and spaced < 0.05:
        return {"kind": "id"}
    known = sum(status_class(v) is not None for v in counts.field("values").to_pylist())
    lowcard = distinct <= 30 and distinct <= max(3, 0.3 * n)
    named = bool(STATUS_WORDS & words) and distinct <= min(50, 0.5 * n)
    if lowcard or known or named:
        ordered = sorted(counts.to_pylist(), key=lambda c: -c["counts"])
        return {"kind": "status", "values": tuple(c["values"] for c in ordered)}
    if spaced < 0.05 and share(present, r"\d") >= 0.5 and distinct >= 0.5 * n:
        return {"kind": "id"}
    return {"kind": "text"}
