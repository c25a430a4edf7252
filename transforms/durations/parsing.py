"""One duration value of any accepted spelling -> its total seconds (exact decimal)."""

from __future__ import annotations

from decimal import Decimal, localcontext

from transforms.durations.clock import parse_clock
from transforms.durations.decimal_numbers import BARE_NUMBER, EXACT, quoted, read_number
from transforms.durations.iso8601 import parse_iso
from transforms.durations.unit_text import TEXT_PART, parse_unit_text
from transforms.durations.units import UNIT_SECONDS, check_unit


def parse_duration(text: str, unit: str | None) -> Decimal:
    """Total seconds of one trimmed value; ``unit`` applies to bare numbers only.

    Raises ``ValueError`` with a message naming the value when it is not an accepted duration.
    """
    check_unit(unit)
    with localcontext(EXACT):
        return parse_signed(text.strip(), unit)


def parse_signed(text: str, unit: str | None) -> Decimal:
    """Seconds of one trimmed value (exact context held); a minus sign anywhere is negative."""
    if text.count("-") != 1:
        return _parse(text, unit)
    try:
        magnitude = _parse(text.replace("-", ""), "seconds")
    except ValueError:
        raise ValueError(f"unrecognised duration {quoted(text)}") from None
    if magnitude:
        raise ValueError(f"negative duration {quoted(text)}")
    return magnitude


def _parse(text: str, unit: str | None) -> Decimal:
    """Seconds of an unsigned value: bare number, clock, ISO 8601 or unit text."""
    if not text:
        raise ValueError("blank duration ''")
    if not text.isascii():
        raise ValueError(f"unrecognised duration {quoted(text)}")
    if BARE_NUMBER.fullmatch(text):
        if unit is None:
            raise ValueError(f"bare number {quoted(text)} has no unit: set time_spent.unit")
        return read_number(text, text) * UNIT_SECONDS[unit]
    if ":" in text:
        return parse_clock(text)
    if text[0] in "Pp":
        return parse_iso(text)
    if TEXT_PART.match(text):
        return parse_unit_text(text)
    raise ValueError(f"unrecognised duration {quoted(text)}")
