"""`time_spent`: any accepted duration spelling -> canonical ISO 8601 (H/M/S only, DESIGN §5).

Exact decimal arithmetic throughout. A column is converted by its distinct values: whole numbers
with Arrow compute, anything else by the per-value parser, once per spelling.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext
from functools import partial
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from transforms.converted import Converted
from transforms.errors import MappingError
from transforms.text import clean_text

UNITS: tuple[str, ...] = ("seconds", "minutes", "hours", "excel_days")
_CODE = "invalid_duration"

_UNIT_SECONDS = {"seconds": 1, "minutes": 60, "hours": 3600, "excel_days": 86400}
# Unit words of free text, by their length in seconds; calendar words have no fixed length.
_WORD_SECONDS = {
    **dict.fromkeys(("w", "wk", "wks", "week", "weeks"), Decimal(604800)),
    **dict.fromkeys(("d", "day", "days"), Decimal(86400)),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), Decimal(3600)),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), Decimal(60)),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), Decimal(1)),
    **dict.fromkeys(("ms", "msec", "msecs", "millisecond", "milliseconds"), Decimal("0.001")),
}
_CALENDAR_WORDS = frozenset(
    ("mo", "mos", "mon", "mons", "month", "months", "y", "yr", "yrs", "year", "years")
)
_ISO_SECONDS = {"W": 604800, "D": 86400, "H": 3600, "M": 60, "S": 1}

_NUM = r"(?:[0-9]+(?:[.,][0-9]+)?|[.,][0-9]+)"
_BARE = re.compile(_NUM, re.ASCII)
_ISO_PART = re.compile(rf"({_NUM})([A-Z])", re.ASCII)
_TEXT_PART = re.compile(
    r"([0-9]+(?:[.,][0-9]+)?)\s*([a-z]+)(?:\.(?=\s|$))?", re.ASCII | re.IGNORECASE
)
_TEXT_SEP = re.compile(r"\s*(?:,\s*|and\s+)?", re.ASCII | re.IGNORECASE)
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_TWO_DIGITS = re.compile(r"[0-9]{2}", re.ASCII)
_CLOCK_SECONDS = re.compile(r"[0-9]{2}(?:[.,][0-9]+)?", re.ASCII)
_MAX_DIGITS = 40
# Precision far above any accepted input (40 digits times 604800), so arithmetic stays exact.
_EXACT = Context(prec=100, rounding=ROUND_HALF_UP)
_MILLI = Decimal("0.001")

_Row = tuple[str | None, str | None, str | None]  # (value, code, message) of one value


def parse_duration(text: str, unit: str | None) -> Decimal:
    """Total seconds of one trimmed value; ``unit`` applies to bare numbers only.

    Raises ``ValueError`` with a message naming the value when it is not an accepted duration.
    """
    _check_unit(unit)
    with localcontext(_EXACT):
        return _parse_signed(text.strip(), unit)


def format_duration(seconds: Decimal) -> str:
    """Canonical ISO 8601: H/M/S only, zero parts omitted, seconds to 3 decimals half-up."""
    seconds = Decimal(seconds)
    if not seconds.is_finite() or seconds < 0 or seconds.adjusted() > _MAX_DIGITS + 10:
        raise ValueError(f"cannot write {seconds} s as a duration")
    millis = int(seconds.quantize(_MILLI, context=_EXACT).scaleb(3, context=_EXACT))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    whole, millis = divmod(millis, 1000)
    text = "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    if whole or millis:
        text += f"{whole}.{millis:03d}".rstrip("0").rstrip(".") + "S"
    return "PT0S" if text == "PT" else text


def to_iso_durations(values: pa.Array, unit: str | None) -> Converted:
    """Convert a cleaned text column or a numeric/duration Parquet column; nulls stay null.

    Each distinct value is converted once and the results are spread back over the rows.
    """
    _check_unit(unit)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        return _spread(_convert_distinct(clean_text(values.dictionary), unit), values.indices)
    if pa.types.is_null(values.type):
        nulls = pa.nulls(len(values), pa.string())
        return Converted(nulls, nulls, nulls)
    try:
        encoded = pc.dictionary_encode(values)
    except pa.ArrowNotImplementedError:
        return _unsupported(values)
    return _spread(_convert_distinct(encoded.dictionary, unit), encoded.indices)


def _check_unit(unit: str | None) -> None:
    """A unit outside UNITS is a mapping problem, not a row problem."""
    if unit is not None and unit not in _UNIT_SECONDS:
        raise MappingError("time_spent.unit", f"unknown unit {unit!r}; allowed: {', '.join(UNITS)}")


def _q(text: str) -> str:
    """The offending value quoted for a message, shortened when very long."""
    return f"'{text}'" if len(text) <= 60 else f"'{text[:57]}...'"


def _number(token: str, text: str) -> Decimal:
    """One number token (decimal point or comma) of ``text``, bounded so arithmetic stays exact."""
    if len(token) > _MAX_DIGITS:
        raise ValueError(f"{_q(text)}: number has more than {_MAX_DIGITS} digits")
    return Decimal(token.replace(",", "."))


def _non_negative(seconds: Decimal, text: str) -> Decimal:
    """``seconds`` if it is a usable amount (finite, not negative, bounded), else ValueError."""
    if not seconds.is_finite():
        raise ValueError(f"{_q(text)} is not a finite number")
    if seconds < 0:
        raise ValueError(f"negative duration {_q(text)}")
    if seconds.adjusted() >= _MAX_DIGITS:
        raise ValueError(f"{_q(text)}: number has more than {_MAX_DIGITS} digits")
    return seconds


def _parse_signed(text: str, unit: str | None) -> Decimal:
    """Seconds of one trimmed value (exact context held); a minus sign anywhere is negative."""
    if text.count("-") != 1:
        return _parse(text, unit)
    try:
        magnitude = _parse(text.replace("-", ""), "seconds")
    except ValueError:
        raise ValueError(f"unrecognised duration {_q(text)}") from None
    if magnitude:
        raise ValueError(f"negative duration {_q(text)}")
    return magnitude


def _parse(text: str, unit: str | None) -> Decimal:
    """Seconds of an unsigned value: bare number, clock, ISO 8601 or unit text."""
    if not text:
        raise ValueError("blank duration ''")
    if not text.isascii():
        raise ValueError(f"unrecognised duration {_q(text)}")
    if _BARE.fullmatch(text):
        if unit is None:
            raise ValueError(f"bare number {_q(text)} has no unit: set time_spent.unit")
        return _number(text, text) * _UNIT_SECONDS[unit]
    if ":" in text:
        return _parse_clock(text)
    if text[0] in "Pp":
        return _parse_iso(text)
    if _TEXT_PART.match(text):
        return _parse_text(text)
    raise ValueError(f"unrecognised duration {_q(text)}")


def _parse_clock(text: str) -> Decimal:
    """``H:MM``, ``H:MM:SS[.f]`` and SCORM 1.2 ``HHHH:MM:SS.SS``; hours may exceed 23."""
    parts = text.split(":")
    if len(parts) > 3:
        raise ValueError(f"{_q(text)}: a clock time has three parts at most (H:MM:SS)")
    hours, minutes, *rest = parts
    if not _DIGITS.fullmatch(hours):
        raise ValueError(f"{_q(text)}: hours must be digits")
    if not rest and len(minutes) > 2 and _CLOCK_SECONDS.fullmatch(minutes):
        raise ValueError(f"{_q(text)}: only seconds may have a fraction (H:MM:SS.f)")
    if not _TWO_DIGITS.fullmatch(minutes):
        raise ValueError(f"{_q(text)}: minutes need two digits")
    seconds = rest[0] if rest else "00"
    if not _CLOCK_SECONDS.fullmatch(seconds):
        raise ValueError(f"{_q(text)}: seconds need two digits")
    if int(minutes) >= 60 or int(seconds[:2]) >= 60:
        raise ValueError(f"{_q(text)}: minutes and seconds must be below 60")
    return _number(hours, text) * 3600 + int(minutes) * 60 + _number(seconds, text)


def _parse_iso(text: str) -> Decimal:
    """ISO 8601 ``PnYnMnWnDTnHnMnS``; non-zero years or months have no fixed length."""
    date, has_t, time = text[1:].upper().partition("T")
    if not date and not has_t:
        raise ValueError(f"{_q(text)}: ISO duration has no parts")
    if has_t and not time:
        raise ValueError(f"{_q(text)}: T must be followed by hours, minutes or seconds")
    parts = _iso_parts(date, "YMWD", "HS", text) + _iso_parts(time, "HMS", "YWD", text)
    if any(c in number for number, _, _ in parts[:-1] for c in ".,"):
        raise ValueError(f"{_q(text)}: only the last part may have a fraction")
    total = Decimal(0)
    for number, designator, in_date in parts:
        value = _number(number, text)
        if in_date and designator in "YM":
            if value:
                raise ValueError(f"{_q(text)}: years and months are ambiguous")
            continue
        total += value * _ISO_SECONDS[designator]
    return total


def _iso_parts(section: str, order: str, other_side: str, text: str) -> list[tuple[str, str, bool]]:
    """(number, designator, in date section) of one side of T, in strict ISO order."""
    parts: list[tuple[str, str, bool]] = []
    position, last = 0, -1
    while position < len(section):
        match = _ISO_PART.match(section, position)
        if match is None:
            bare = _BARE.match(section, position)
            reason = "number without designator" if bare else f"unexpected {section[position]!r}"
            raise ValueError(f"{_q(text)}: {reason}")
        number, designator = match.groups()
        if designator in other_side:
            side = "after" if order == "YMWD" else "before"
            raise ValueError(f"{_q(text)}: {designator} belongs {side} T")
        if designator not in order:
            raise ValueError(f"{_q(text)}: unknown designator {designator!r}")
        if order.index(designator) <= last:
            raise ValueError(f"{_q(text)}: parts out of order or repeated")
        last = order.index(designator)
        parts.append((number, designator, order == "YMWD"))
        position = match.end()
    return parts


def _parse_text(text: str) -> Decimal:
    """Unit text such as ``1h 30m``, ``1 hr 30 mins``, ``2d 3h``, ``1,5 h`` (any case)."""
    total, position, previous, fraction = Decimal(0), 0, Decimal("Infinity"), False
    while position < len(text):
        if position:
            position = _TEXT_SEP.match(text, position).end()  # type: ignore[union-attr]
        match = _TEXT_PART.match(text, position)
        if match is None:
            rest = text[position:]
            if not rest:
                raise ValueError(f"{_q(text)}: unexpected end")
            if _DIGITS.match(rest):
                raise ValueError(f"{_q(text)}: every number needs a unit")
            raise ValueError(f"{_q(text)}: unexpected {rest[0]!r}")
        number, word = match.group(1), match.group(2).lower()
        if word in _CALENDAR_WORDS:
            raise ValueError(f"{_q(text)}: months and years are ambiguous")
        if word not in _WORD_SECONDS:
            raise ValueError(f"{_q(text)}: unknown unit {word!r}")
        if fraction:
            raise ValueError(f"{_q(text)}: only the last part may have a fraction")
        if _WORD_SECONDS[word] >= previous:
            raise ValueError(f"{_q(text)}: parts out of order or repeated")
        previous, fraction = _WORD_SECONDS[word], "." in number or "," in number
        total += _number(number, text) * previous
        position = match.end()
    return total


def _convert_distinct(values: pa.Array, unit: str | None) -> Converted:
    """Convert the distinct values of a column, by its type."""
    kind = values.type
    if pa.types.is_integer(kind) and unit is not None:
        try:
            return _whole_numbers(values, _UNIT_SECONDS[unit])
        except pa.ArrowInvalid:  # beyond int64: the exact per-value path below handles it
            pass
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        # Arrow writes the shortest round-trip text per type, so float 1.1 reads as exactly 1.1.
        return _each(pc.cast(values, pa.string()), lambda v: _number_row(v, unit))
    if pa.types.is_duration(kind):
        scale = {"s": 0, "ms": -3, "us": -6, "ns": -9}[kind.unit]
        return _each(
            pc.cast(values, pa.int64()),
            lambda v: _row(lambda: _non_negative(Decimal(v).scaleb(scale), f"{v}{kind.unit}")),
        )
    try:
        text = pc.cast(values, pa.string())
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        return _unsupported(values)
    convert = partial(_text_row, unit=unit)
    if unit is None:
        return _each(text, convert)
    # Whole numbers are the bulk of most columns and can be many: convert them with Arrow compute.
    whole = pc.fill_null(pc.match_substring_regex(text, r"^[0-9]{1,12}$"), False)
    if not pc.any(whole).as_py():
        return _each(text, convert)
    null = pa.scalar(None, pa.string())
    numbers = _whole_numbers(
        pc.cast(pc.if_else(whole, text, null), pa.int64()), _UNIT_SECONDS[unit]
    )
    others = _each(pc.if_else(whole, null, text), convert)
    return Converted(
        *(pc.if_else(whole, a, b) for a, b in zip(_parts(numbers), _parts(others), strict=True))
    )


def _parts(converted: Converted) -> tuple[pa.Array, pa.Array, pa.Array]:
    """The three arrays of a Converted, in field order."""
    return converted.values, converted.codes, converted.messages


def _spread(distinct: Converted, indices: pa.Array) -> Converted:
    """Rows from the results of their distinct values (null index: null row, no error)."""
    if distinct.codes.null_count == len(distinct.codes):  # no errors: skip two of three takes
        nulls = pa.nulls(len(indices), pa.string())
        return Converted(distinct.values.take(indices), nulls, nulls)
    return Converted(*(part.take(indices) for part in _parts(distinct)))


def _unsupported(values: pa.Array) -> Converted:
    """Every non-null row of a column whose type cannot hold a duration (list, struct, ...)."""
    present = pc.is_valid(values)
    null = pa.scalar(None, pa.string())
    message = f"a {values.type} column cannot hold durations"
    return Converted(
        pa.nulls(len(values), pa.string()),
        pc.if_else(present, _CODE, null),
        pc.if_else(present, message, null),
    )


def _each(values: pa.Array, convert: Callable[[Any], _Row]) -> Converted:
    """Convert each non-null value in Python (exact decimal context held once for all)."""
    with localcontext(_EXACT):
        rows = [(None, None, None) if v is None else convert(v) for v in values.to_pylist()]
    return Converted.from_lists(
        [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], pa.string()
    )


def _row(parse: Callable[[], Decimal]) -> _Row:
    """(value, code, message) of one value: the row error instead of the exception."""
    try:
        return format_duration(parse()), None, None
    except ValueError as error:
        return None, _CODE, str(error)


def _text_row(text: str, unit: str | None) -> _Row:
    """One text value through the per-value core (the exact context is already held)."""
    return _row(lambda: _parse_signed(text.strip(), unit))


def _number_row(text: str, unit: str | None) -> _Row:
    """One number of a numeric column (Arrow's text of it), read in ``unit``."""

    def seconds() -> Decimal:
        number = _non_negative(Decimal(text), text)
        if unit is None:
            raise ValueError(f"bare number {_q(text)} has no unit: set time_spent.unit")
        return number * _UNIT_SECONDS[unit]

    return _row(seconds)


def _whole_numbers(values: pa.Array, seconds_per_unit: int) -> Converted:
    """Whole numbers in a unit of a second or more: exact in int64, formatted by Arrow compute."""
    seconds = pc.multiply_checked(pc.cast(values, pa.int64()), seconds_per_unit)
    negative = pc.fill_null(pc.less(seconds, 0), False)
    seconds = pc.if_else(negative, pa.scalar(None, pa.int64()), seconds)
    hours = pc.divide(seconds, 3600)
    minutes = pc.divide(pc.subtract(seconds, pc.multiply(hours, 3600)), 60)
    rest = pc.subtract(seconds, pc.add(pc.multiply(hours, 3600), pc.multiply(minutes, 60)))

    def part(amount: pa.Array, designator: str) -> pa.Array:
        text = pc.binary_join_element_wise(pc.cast(amount, pa.string()), designator, "")
        return pc.if_else(pc.equal(amount, 0), "", text)

    iso = pc.binary_join_element_wise(
        "PT", part(hours, "H"), part(minutes, "M"), part(rest, "S"), ""
    )
    iso = pc.if_else(pc.equal(seconds, 0), "PT0S", iso)
    null = pa.scalar(None, pa.string())
    if not pc.any(negative).as_py():
        return Converted(
            iso, pa.nulls(len(values), pa.string()), pa.nulls(len(values), pa.string())
        )
    message = pc.binary_join_element_wise(
        "negative duration '", pc.cast(values, pa.string()), "'", ""
    )
    return Converted(iso, pc.if_else(negative, _CODE, null), pc.if_else(negative, message, null))
