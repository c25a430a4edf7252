"""Per-value fallback: Python parses only the rows no vectorised shape took (rare or invalid)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from transforms.timestamps.millis import EPOCH, Ints, Mask

Parsed = tuple[datetime, bool] | None  # (datetime rounded later, is_wall_time) or not parseable


def fill_per_value(ms: Ints, ok: Mask, rows: Ints, results: list[Parsed], zone: str) -> None:
    """Write per-value parse results into ``ms``/``ok`` (naive results are read in ``zone``)."""
    info = ZoneInfo(zone)
    for i, parsed in zip(rows, results, strict=True):
        if parsed is None:
            continue
        moment, wall = parsed
        if wall:
            moment = moment.replace(tzinfo=info)
        ms[i] = ((moment - EPOCH) // timedelta(microseconds=1) + 500) // 1_000
        ok[i] = True
