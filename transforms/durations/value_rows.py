"""One duration value -> its row (canonical text, error code, message), errors as values."""

from __future__ import annotations

import functools
from collections.abc import Callable
from decimal import Decimal, localcontext
from typing import Any

import pyarrow as pa

from transforms.converted import Converted
from transforms.durations.canonical import format_duration
from transforms.durations.decimal_numbers import EXACT, non_negative, quoted
from transforms.durations.parsing import parse_signed
from transforms.durations.units import UNIT_SECONDS

CODE = "invalid_duration"

Row = tuple[str | None, str | None, str | None]  # (value, code, message) of one value


def convert_each(values: pa.Array, convert: Callable[[Any], Row]) -> Converted:
    """Convert each non-null value in Python (exact decimal context held once for all)."""
    with localcontext(EXACT):
        rows = [(None, None, None) if v is None else convert(v) for v in values.to_pylist()]
    return Converted.from_lists(
        [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], pa.string()
    )


def value_row(parse: Callable[[], Decimal]) -> Row:
    """(value, code, message) of one value: the row error instead of the exception."""
    try:
        return format_duration(parse()), None, None
    except ValueError as error:
        return None, CODE, str(error)


@functools.lru_cache(maxsize=1 << 16)
def text_row(text: str, unit: str | None) -> Row:
    """One text value through the per-value core (the exact context is already held); memoised,
    as a column's odd values (``7.5``, ``1h30m``) come back in chunk after chunk."""
    return value_row(lambda: parse_signed(text.strip(), unit))


def number_row(text: str, unit: str | None) -> Row:
    """One number of a numeric column (Arrow's text of it), read in ``unit``."""

    def seconds() -> Decimal:
        number = non_negative(Decimal(text), text)
        if unit is None:
            raise ValueError(f"bare number {quoted(text)} has no unit: set time_spent.unit")
        return number * UNIT_SECONDS[unit]

    return value_row(seconds)
