"""A strptime ``format``: numpy for fixed-width text, else Arrow's (glibc) strptime, else Python's."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms.timestamps.fixed_width import parse_fixed_width
from transforms.timestamps.formats import ARROW_DIRECTIVES, directives, move_directives
from transforms.timestamps.millis import Ints, Mask, ints, np_mask
from transforms.timestamps.per_value import Parsed, fill_per_value
from transforms.timestamps.zones import localize

_YEAR_1000_MS = -30_610_224_000_000  # 1000-01-01T00:00:00.000Z


def parse_strptime(text: pa.Array, fmt: str, zone: str) -> tuple[Ints, Mask]:
    """A strptime pattern: numpy for uniform fixed-width text, else Arrow's (glibc) strptime,
    else Python's for what those refuse or may bend."""
    found = directives(fmt)
    ms, ok = parse_fixed_width(text, fmt)
    rows = np.flatnonzero(np_mask(text.is_valid()) & ~ok)
    if len(rows) and found <= ARROW_DIRECTIVES:
        part = text if len(rows) == len(text) else text.take(rows)
        parsed = pc.strptime(part, format=fmt, unit="ms", error_is_null=True)
        part_ms, part_ok = ints(parsed.cast(pa.int64()))
        part_ok &= part_ms >= _YEAR_1000_MS  # glibc's %Y also takes 1-3 digits: Python decides
        part_ok &= ~_strptime_suspects(part, parsed, fmt, found)
        ms[rows], ok[rows] = part_ms, part_ok
    if "z" not in found:
        ms = localize(ms, ok, zone)
    retry = np.flatnonzero(np_mask(text.is_valid()) & ~ok)
    fill_per_value(ms, ok, retry, [_py_strptime(text[int(i)].as_py(), fmt) for i in retry], zone)
    return ms, ok


def _strptime_suspects(text: pa.Array, parsed: pa.Array, fmt: str, found: set[str]) -> Mask:
    """Rows glibc may have bent: a day past the month's end or second 60 rolled over.

    A rolled-over row is re-parsed with the raw field moved to a slot that refuses it (day → %I,
    second → %M); a null there means the raw value was out of range.
    """
    suspect = np.zeros(len(text), np.bool_)
    checks: list[tuple[pa.Array, dict[str, str]]] = []
    if "d" in found:
        day = pc.day(parsed)
        near = pc.or_(pc.less_equal(day, 4), pc.greater_equal(day, 28)) if "z" in found else None
        checks.append((near if near is not None else pc.less_equal(day, 3), {"d": "I", "I": "H"}))
    if "S" in found:
        checks.append((pc.less_equal(pc.second(parsed), 1), {"S": "M", "M": "S"}))
    for candidates, moves in checks:
        rows = np.flatnonzero(np_mask(pc.fill_null(candidates, False)))
        if len(rows):
            moved = move_directives(fmt, moves)
            again = pc.strptime(text.take(rows), format=moved, unit="ms", error_is_null=True)
            suspect[rows[np_mask(again.is_null())]] = True
    return suspect


def _py_strptime(value: str, fmt: str) -> Parsed:
    """Parse one text with Python's strptime (the reference semantics of a format)."""
    try:
        moment = datetime.strptime(value, fmt)
    except (ValueError, OverflowError):
        return None
    return moment, moment.tzinfo is None
