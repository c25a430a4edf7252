"""ISO 8601 text (no format set): Arrow casts where a column is uniform, Python for the rest."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms.timestamps.arrow_casts import TooManyFailures, cast_lenient
from transforms.timestamps.fixed_width import parse_fixed_width
from transforms.timestamps.millis import Ints, Mask, np_mask, round_ms
from transforms.timestamps.per_value import Parsed, fill_per_value
from transforms.timestamps.zones import localize

# Arrow's ISO 8601 grammar, also used by the per-value fallback and for messages.
ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)?)?",
    re.ASCII,
)
_ISO_ZONE = r"[T ]\d{2}[0-9:.]*(?:Z|[+-]\d{2}(?::?\d{2})?)$"
_ISO_SHAPE = r"^\d{4}-\d{2}-\d{2}(?:[T ][0-9:.]+(?:Z|[+-][0-9:]+)?)?$"
_NAIVE_NS, _AWARE_NS = pa.timestamp("ns"), pa.timestamp("ns", "UTC")
# Naive fixed-width layouts by length (the date/time separator is the value's own T or space).
_FIXED_ISO = {10: "%Y-%m-%d", 16: "%Y-%m-%dT%H:%M", 19: "%Y-%m-%dT%H:%M:%S"}
_FIXED_SHARE = 0.99


def parse_iso(text: pa.Array, zone: str) -> tuple[Ints, Mask]:
    """ISO 8601: numpy when (nearly) every row is one naive fixed-width layout, else one cast
    when a sample says the column is uniform (a few bad rows are found by halving), else split
    by shape first: a failing Arrow cast costs ~2 µs per bad row, so a cast is only tried where
    nearly every row should pass."""
    fixed = _fixed_width_iso(text, zone)
    if fixed is not None:
        return fixed
    kind = _iso_kind(text)
    try:
        if kind is not None:
            parsed = cast_lenient(text, _NAIVE_NS if kind == "naive" else _AWARE_NS, [64])
            ms, ok = round_ms(parsed)
            if kind == "naive":
                ms = localize(ms, ok, zone)
            retry = np.flatnonzero(np_mask(text.is_valid()) & ~ok)
            fill_per_value(ms, ok, retry, [py_iso(text[int(i)].as_py()) for i in retry], zone)
            return ms, ok
    except TooManyFailures:
        pass
    shaped = pc.match_substring_regex(text, _ISO_SHAPE)
    zoned = pc.match_substring_regex(text, _ISO_ZONE)
    aware, naive = pc.and_(shaped, zoned), pc.and_(shaped, pc.invert(zoned))
    naive_ms, naive_ok = round_ms(cast_lenient(pc.if_else(naive, text, None), _NAIVE_NS))
    aware_ms, aware_ok = round_ms(cast_lenient(pc.if_else(aware, text, None), _AWARE_NS))
    ms = np.where(aware_ok, aware_ms, localize(naive_ms, naive_ok, zone))
    ok = aware_ok | naive_ok
    # Shaped rows Arrow refused: dates outside 1677..2262 (the ns range) or impossible ones.
    retry = np.flatnonzero(np_mask(pc.fill_null(shaped, False)) & ~ok)
    fill_per_value(ms, ok, retry, [py_iso(text[int(i)].as_py()) for i in retry], zone)
    return ms, ok


def _fixed_width_iso(text: pa.Array, zone: str) -> tuple[Ints, Mask] | None:
    """Naive ``YYYY-MM-DD[( |T)HH:MM[:SS]]`` read by numpy when the first value has that shape and
    at least 99 % of the values parse so; the others go through ``py_iso`` (the reference)."""
    valid = np_mask(text.is_valid())
    present = np.flatnonzero(valid)
    if not len(present):
        return None
    first = text[int(present[0])].as_py()
    fmt = _FIXED_ISO.get(len(first))
    if fmt is None or (len(first) > 10 and first[10] not in "T "):
        return None
    ms, ok = parse_fixed_width(text, fmt.replace("T", first[10]) if len(first) > 10 else fmt)
    if np.count_nonzero(ok) < _FIXED_SHARE * len(present):
        return None
    ms = localize(ms, ok, zone)
    retry = np.flatnonzero(valid & ~ok)
    fill_per_value(ms, ok, retry, [py_iso(text[int(i)].as_py()) for i in retry], zone)
    return ms, ok


def _iso_kind(text: pa.Array) -> str | None:
    """``naive`` or ``aware`` when up to 256 evenly spread values are (nearly all) that ISO kind."""
    rows = np.unique(np.linspace(0, len(text) - 1, min(len(text), 256)).astype(np.int64))
    parsed = [py_iso(value) for value in text.take(rows).to_pylist() if value]
    kinds = [result[1] for result in parsed if result is not None]
    if not kinds or len(kinds) < 0.9 * len(parsed) or len(set(kinds)) > 1:
        return None
    return "naive" if kinds[0] else "aware"


def py_iso(value: str) -> Parsed:
    """Parse one ISO 8601 text with the grammar Arrow's cast accepts."""
    m = ISO.fullmatch(value)
    if m is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = m.groups()
    try:
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0")[:6].ljust(6, "0")),
        )
    except ValueError:
        return None
    if offset is None:
        return moment, True
    if offset == "Z":
        return moment.replace(tzinfo=UTC), False
    hours, minutes = int(offset[1:3]), int(offset[-2:]) if len(offset) > 3 else 0
    if hours > 23 or minutes > 59:
        return None
    sign = -1 if offset[0] == "-" else 1
    return moment.replace(tzinfo=timezone(sign * timedelta(hours=hours, minutes=minutes))), False
