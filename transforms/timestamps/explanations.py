"""Why a row is not a timestamp: the message of an ``invalid_timestamp`` row, built only on failure."""

from __future__ import annotations

import re
from datetime import datetime

import pyarrow as pa

from transforms.timestamps.formats import SPECIAL_FORMATS
from transforms.timestamps.iso import ISO, py_iso

_SLASHED = re.compile(r"\d{1,4}/\d{1,2}/\d{1,4}", re.ASCII)
_ABBREVIATION = re.compile(r"[\d\s][A-Za-z]{2,5}$", re.ASCII)


class Why:
    """Builds the message of an invalid row lazily (only failed rows pay for it)."""

    def __init__(self, values: pa.Array, fmt: str | None) -> None:
        self.values, self.fmt = values, fmt

    def __call__(self, i: int, shown: str) -> str:
        """Say why row ``i`` (shown as ``shown``) is not a timestamp."""
        kind = self.values.type
        if pa.types.is_string(kind):
            return _why_text(self.values[i].as_py(), self.fmt)
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
            if self.fmt not in SPECIAL_FORMATS:
                return f"{shown} is a number; set the format to epoch_s, epoch_ms or excel_serial"
            return f"{shown} as {self.fmt} is not a date in the years 0001..9999"
        if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
            return f"{shown} is outside the years 0001..9999 in UTC"
        return f"{shown}: a {kind} column cannot hold a completion timestamp"


def show_row(values: pa.Array, i: int) -> str:
    """Row ``i`` as it appears in a message: text quoted, typed values as Arrow prints them."""
    if pa.types.is_string(values.type):
        return repr(values[i].as_py())
    try:
        return str(values[i : i + 1].cast(pa.string())[0].as_py())
    except pa.ArrowException:
        return f"a {values.type} value"


def _why_text(value: str, fmt: str | None) -> str:
    """The reason one text is not a valid timestamp, for the row's error message."""
    shown = repr(value)
    if fmt in SPECIAL_FORMATS:
        return f"{shown} is not a valid {fmt} value (a number giving a date in 0001..9999)"
    if fmt is not None:
        try:
            datetime.strptime(value, fmt)
        except (ValueError, OverflowError) as exc:
            if str(exc).startswith("time data"):
                return f"{shown} does not match format {fmt!r}"
            return f"{shown} does not match format {fmt!r}: {exc}"
        return f"{shown} is outside the years 0001..9999 in UTC"
    if value.startswith("0000-00-00"):
        return f"{shown} is a zero date (0000-00-00), not a real date"
    if _SLASHED.match(value):
        return f"{shown} is a slashed date: day/month order is unknown; set the column's format"
    if _ABBREVIATION.search(value) and not value.endswith("Z"):
        return f"{shown} names a zone abbreviation, which is ambiguous; use Z or an offset (+02:00)"
    if ISO.fullmatch(value):
        if py_iso(value) is None and not value.startswith("0000-"):
            return f"{shown} is not a real date or time (e.g. February 30, 25:00, offset +24:00)"
        return f"{shown} is outside the years 0001..9999 in UTC"
    return f"{shown} is not ISO 8601 (e.g. 2024-03-05T14:22:10Z, 2024-03-05 14:22 or 2024-03-05)"
