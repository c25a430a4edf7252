"""Numeric formats: epoch_s, epoch_ms and excel_serial, as text, numbers or decimals → ms.

Exact decimal arithmetic rounding half-up; Excel serials are wall time in the column's zone.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms.timestamps.arrow_casts import cast_lenient
from transforms.timestamps.millis import EPOCH, MAX_MS, MS_PER_DAY, Ints, Mask, ints, np_mask
from transforms.timestamps.per_value import Parsed, fill_per_value
from transforms.timestamps.zones import localize

DECIMAL = pa.decimal128(28, 9)
_EXCEL_BASE_MS = -2_209_161_600_000  # 1899-12-30T00:00 (wall time)
_FACTOR_MS = {"epoch_s": 1_000, "epoch_ms": 1, "excel_serial": MS_PER_DAY}


def parse_number_text(text: pa.Array, fmt: str, zone: str) -> tuple[Ints, Mask]:
    """epoch_s / epoch_ms / excel_serial written as text; exact decimal arithmetic."""
    try:
        dec = pc.cast(text, DECIMAL)
    except pa.ArrowException:  # keep only number-shaped rows for Arrow, the rest go per value
        shaped = pc.match_substring_regex(text, r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
        dec = cast_lenient(pc.if_else(shaped, text, None), DECIMAL)
    ms, ok = parse_decimals(dec, fmt, zone)
    retry = np.flatnonzero(np_mask(text.is_valid()) & ~np_mask(dec.is_valid()))
    results = [_py_number(text[int(i)].as_py(), fmt) for i in retry]
    fill_per_value(ms, ok, retry, results, zone if fmt == "excel_serial" else "UTC")
    return ms, ok


def parse_decimals(dec: pa.Array, fmt: str, zone: str) -> tuple[Ints, Mask]:
    """Decimal numbers → ms, rounded half-up; Excel serials are wall time in ``zone``."""
    factor = _FACTOR_MS[fmt]
    low, high = _bounds(fmt)
    inside = pc.and_(
        pc.greater_equal(dec, pa.scalar(Decimal(low), DECIMAL)),
        pc.less_equal(dec, pa.scalar(Decimal(high), DECIMAL)),
    )
    scaled = pc.multiply(
        pc.if_else(inside, dec, None), pa.scalar(Decimal(factor), pa.decimal128(9))
    )
    ms, ok = ints(pc.round(scaled, ndigits=0, round_mode="half_up").cast(pa.int64()))
    if fmt == "excel_serial":
        return localize(ms + _EXCEL_BASE_MS, ok, zone), ok
    return ms, ok


def parse_numbers(values: pa.Array, fmt: str, zone: str) -> tuple[Ints, Mask]:
    """Integer or float Parquet columns → ms (floats round half-up in binary floating point)."""
    factor = _FACTOR_MS[fmt]
    low, high = _bounds(fmt)
    if pa.types.is_floating(values.type):
        number = np.asarray(pc.fill_null(values.cast(pa.float64()), np.nan).to_numpy())
        with np.errstate(invalid="ignore"):
            ok = (number >= low) & (number <= high)
        ms = np.floor(np.where(ok, number, 0) * factor + 0.5).astype(np.int64)
    else:
        if pa.types.is_unsigned_integer(values.type):
            low = 0
        inside = pc.and_(
            pc.greater_equal(values, pa.scalar(low, values.type)),
            pc.less_equal(values, pa.scalar(min(high, _type_max(values.type)), values.type)),
        )
        whole, ok = ints(pc.if_else(inside, values, None).cast(pa.int64()))
        ms = whole * factor
    if fmt == "excel_serial":
        return localize(ms + _EXCEL_BASE_MS, ok, zone), ok
    return ms, ok


def _bounds(fmt: str) -> tuple[int, int]:
    """Smallest and largest raw number of a numeric format worth converting (a day of slack)."""
    high = (MAX_MS + 2 * MS_PER_DAY) // _FACTOR_MS[fmt]
    return (0 if fmt == "excel_serial" else -high), high


def _type_max(kind: pa.DataType) -> int:
    """The largest value of an integer type."""
    return int(np.iinfo(kind.to_pandas_dtype()).max)


def _py_number(value: str, fmt: str) -> Parsed:
    """Parse one epoch / Excel serial text Arrow's decimal cast refused (e.g. > 9 decimals)."""
    try:
        number = Decimal(value.replace(",", ".") if fmt == "excel_serial" else value)
        if not number.is_finite() or (fmt == "excel_serial" and number < 0):
            return None
        ms = int(
            (number * _FACTOR_MS[fmt] + Decimal("0.5")).to_integral_value(rounding=ROUND_FLOOR)
        )
        if fmt == "excel_serial":
            return datetime(1970, 1, 1) + timedelta(milliseconds=ms + _EXCEL_BASE_MS), True
        return EPOCH + timedelta(milliseconds=ms), False
    except (ArithmeticError, ValueError):  # decimal errors are ArithmeticErrors
        return None
