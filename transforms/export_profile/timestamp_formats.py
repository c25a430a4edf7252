"""Which timestamp format fits a column: candidate patterns and epochs, tried with the converter."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from transforms.export_profile.measures import probe_values, rejected_rows
from transforms.export_profile.profiles import ISO
from transforms.timestamps import to_utc_millis

TIMESTAMP_FORMATS: tuple[str | None, ...] = (  # candidates, ISO 8601 (None) first
    None, "%m/%d/%Y %I:%M %p", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y", "%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S", "%d/%m/%Y", "%d.%m.%Y %H:%M %z",
    "%d.%m.%Y %H:%M:%S %z", "%d.%m.%Y %H:%M", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y",
    "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y/%m/%d", "%d-%m-%Y %H:%M", "%d-%m-%Y",
    "%d-%b-%Y %H:%M", "%d-%b-%Y", "%d %b %Y %H:%M", "%d %b %Y", "%b %d, %Y %I:%M %p", "%b %d, %Y",
    "%Y%m%d",
)  # fmt: skip
EPOCH_RANGES = (("epoch_s", 1e8, 4.2e9), ("epoch_ms", 1e11, 4.2e12), ("excel_serial", 2e4, 8e4))
_NO_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)  # profiling judges formats, not run times


def best_timestamp(present: pa.Array) -> tuple[str | None, int] | None:
    """The candidate format with the fewest errors on a probe, then counted on every row."""
    probe = probe_values(present)
    best: tuple[int, str | None] | None = None
    for fmt in TIMESTAMP_FORMATS:
        errors = timestamp_errors(probe, fmt)
        if best is None or errors < best[0]:
            best = (errors, fmt)
        if errors == 0:
            break
    if best is None or best[0] >= len(probe):
        return None
    return best[1], timestamp_errors(present, best[1])


def timestamp_errors(values: pa.Array, fmt: str | None) -> int:
    """How many of ``values`` the timestamp converter rejects in format ``fmt``."""
    return rejected_rows(to_utc_millis(values, fmt, "UTC", _NO_FUTURE))


def timestamp_guess(fmt: str | None, errors: int, present: pa.Array) -> dict[str, object]:
    """The timestamp guess for a format, noting when day and month could be either way round."""
    note = None
    swapped = _swap_day_month(fmt)
    if fmt is not None and swapped is not None:
        probe = probe_values(present)
        if timestamp_errors(probe, swapped) == timestamp_errors(probe, fmt):
            note = "day and month order cannot be told apart from these values"
    return {"kind": "timestamp", "format": fmt or ISO, "errors": errors, "note": note}


def _swap_day_month(fmt: str | None) -> str | None:
    """The same pattern with day and month swapped (``%m/%d`` ↔ ``%d/%m``), if it has them."""
    if fmt is None or not ("%m/%d" in fmt or "%d/%m" in fmt):
        return None
    return fmt.replace("%m/%d", "\0").replace("%d/%m", "%m/%d").replace("\0", "%d/%m")
