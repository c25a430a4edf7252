"""The ``completed_at`` converter (DESIGN §5): a whole column → UTC ``YYYY-MM-DDTHH:MM:SS.sssZ``.

Dispatches on column type and format to vectorised parsers; epochs and Excel serials round alike.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms.converted import Converted
from transforms.timestamps.arrow_casts import plain
from transforms.timestamps.epoch_excel import (
    DECIMAL,
    parse_decimals,
    parse_number_text,
    parse_numbers,
)
from transforms.timestamps.explanations import Why, show_row
from transforms.timestamps.formats import SPECIAL_FORMATS, check_format
from transforms.timestamps.iso import parse_iso
from transforms.timestamps.millis import EPOCH, MAX_MS, MIN_MS, Ints, Mask, ints, np_mask, round_ms
from transforms.timestamps.strptime import parse_strptime
from transforms.timestamps.utc_text import format_one, format_utc
from transforms.timestamps.zones import check_timezone, localize

_FUTURE_SLACK_US = 24 * 3_600_000_000


def to_utc_millis(values: pa.Array, fmt: str | None, timezone: str, now: datetime) -> Converted:
    """Convert a cleaned text or typed Parquet column to UTC millisecond text (DESIGN §5).

    ``now`` is the run's start (tz-aware); values more than 24 h after it are ``future_timestamp``.
    """
    if now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    check_format(fmt)
    check_timezone(timezone)
    values = plain(values)
    present = np_mask(values.is_valid())
    ms, ok, why = _parse(values, fmt, timezone)
    ok &= present
    ok &= (ms >= MIN_MS) & (ms <= MAX_MS)
    limit = ((now - EPOCH) // timedelta(microseconds=1) + _FUTURE_SLACK_US) // 1_000
    future = ok & (ms > limit)
    ok &= ~future
    invalid = present & ~ok & ~future
    codes: list[str] = []
    messages: list[str] = []
    for i in np.flatnonzero(invalid | future):
        shown = show_row(values, int(i))
        if future[i]:
            codes.append("future_timestamp")
            run = now.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            messages.append(
                f"{shown} is {format_one(int(ms[i]))}, more than 24 h after the run started "
                f"({run})"
            )
        else:
            codes.append("invalid_timestamp")
            messages.append(why(int(i), shown))
    errors = pa.array(invalid | future)
    return Converted(
        format_utc(ms, ok),
        pc.replace_with_mask(
            pa.nulls(len(values), pa.string()), errors, pa.array(codes, pa.string())
        ),
        pc.replace_with_mask(
            pa.nulls(len(values), pa.string()), errors, pa.array(messages, pa.string())
        ),
    )


# every parse path returns (UTC ms, converted mask); _parse adds why(i, shown) -> message


def _parse(values: pa.Array, fmt: str | None, zone: str) -> tuple[Ints, Mask, Why]:
    """Dispatch on the column type and format to the vectorised parsers of this package."""
    why = Why(values, fmt)
    kind = values.type
    n = len(values)
    if pa.types.is_string(kind):
        if fmt is None:
            return (*parse_iso(values, zone), why)
        if fmt in SPECIAL_FORMATS:
            return (*parse_number_text(values, fmt, zone), why)
        return (*parse_strptime(values, fmt, zone), why)
    if pa.types.is_timestamp(kind):
        ms, ok = round_ms(values)
        return (ms if kind.tz is not None else localize(ms, ok, zone)), ok, why
    if pa.types.is_date(kind):
        ms, ok = ints(values.cast(pa.date64()).cast(pa.int64()))
        return localize(ms, ok, zone), ok, why
    if fmt in SPECIAL_FORMATS and (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        return (*parse_numbers(values, fmt, zone), why)
    if fmt in SPECIAL_FORMATS and pa.types.is_decimal(kind):
        return (*parse_decimals(values.cast(DECIMAL, safe=False), fmt, zone), why)
    return np.zeros(n, np.int64), np.zeros(n, np.bool_), why
