"""UTC ms → ``YYYY-MM-DDTHH:MM:SS.sssZ`` text, written with numpy byte tables.

Arrow's strftime costs ~10 µs a value; these tables gather whole columns at once.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from transforms.timestamps.millis import MS_PER_DAY, Ints, Mask

_ROW = np.dtype(
    {
        "names": ["date", "hm", "sms"],
        "formats": ["S10", "S7", "S7"],
        "offsets": [0, 10, 17],
        "itemsize": 24,
    }
)


def format_one(ms: int) -> str:
    """One UTC ms value as ``YYYY-MM-DDTHH:MM:SS.sssZ``."""
    return str(format_utc(np.array([ms], np.int64), np.array([True]))[0])


def format_utc(ms: Ints, ok: Mask) -> pa.Array:
    """UTC ms → ``YYYY-MM-DDTHH:MM:SS.sssZ`` (null where not ``ok``), assembled with numpy from
    per-day, per-minute and per-millisecond tables (Arrow's strftime takes ~10 µs a value)."""
    n = len(ms)
    days, clock = np.divmod(np.where(ok, ms, 0), MS_PER_DAY)
    minute_of_day, ms_of_minute = np.divmod(clock, 60_000)
    hours_minutes, seconds_millis = _clock_tables()
    rows = np.empty(n, _ROW)
    rows["hm"] = hours_minutes[minute_of_day]
    rows["sms"] = seconds_millis[ms_of_minute]
    first, last = (int(days[ok].min()), int(days[ok].max())) if ok.any() else (0, 0)
    if last - first < n:  # a table of the days in range, then one gather
        table = _date_text(np.arange(first, last + 1, dtype=np.int64))
        rows["date"] = table[np.clip(days - first, 0, last - first)]
    else:
        rows["date"] = _date_text(days)
    offsets = np.arange(0, 24 * (n + 1), 24, dtype=np.int32)
    validity = np.packbits(ok, bitorder="little")
    nulls = int(n - np.count_nonzero(ok))
    buffers = [pa.py_buffer(validity), pa.py_buffer(offsets), pa.py_buffer(rows.view(np.uint8))]
    return pa.Array.from_buffers(pa.string(), n, buffers, null_count=nulls)


@functools.cache
def _clock_tables() -> tuple[npt.NDArray[np.bytes_], npt.NDArray[np.bytes_]]:
    """``THH:MM:`` for each minute of a day and ``SS.sssZ`` for each millisecond of a minute."""
    hours_minutes = np.array([b"T%02d:%02d:" % divmod(m, 60) for m in range(1_440)], "S7")
    seconds_millis = np.array([b"%02d.%03dZ" % divmod(m, 1_000) for m in range(60_000)], "S7")
    return hours_minutes, seconds_millis


def _date_text(days: Ints) -> npt.NDArray[np.bytes_]:
    """Days since 1970-01-01 → ``YYYY-MM-DD`` (``S10``), written digit by digit."""
    year, month, day = _civil_from_days(days.astype(np.int32))
    text = np.empty((len(days), 10), np.uint8)
    text[:, 4] = text[:, 7] = ord("-")
    for start, width, number in [(0, 4, year), (5, 2, month), (8, 2, day)]:
        for position in range(start + width - 1, start - 1, -1):
            number, digit = np.divmod(number, 10)
            text[:, position] = digit + 48
    return text.view("S10").ravel()


def _civil_from_days(days: npt.NDArray[np.int32]) -> tuple[npt.NDArray[np.int32], ...]:
    """Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm)."""
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1_460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    return yoe + era * 400 + (month <= 2), month, day
