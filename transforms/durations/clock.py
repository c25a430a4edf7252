"""Clock-style durations: ``H:MM``, ``H:MM:SS[.f]`` and SCORM 1.2 ``HHHH:MM:SS.SS``."""

from __future__ import annotations

import re
from decimal import Decimal

from transforms.durations.decimal_numbers import DIGITS, quoted, read_number

_TWO_DIGITS = re.compile(r"[0-9]{2}", re.ASCII)
_CLOCK_SECONDS = re.compile(r"[0-9]{2}(?:[.,][0-9]+)?", re.ASCII)


def parse_clock(text: str) -> Decimal:
    """``H:MM``, ``H:MM:SS[.f]`` and SCORM 1.2 ``HHHH:MM:SS.SS``; hours may exceed 23."""
    parts = text.split(":")
    if len(parts) > 3:
        raise ValueError(f"{quoted(text)}: a clock time has three parts at most (H:MM:SS)")
    hours, minutes, *rest = parts
    if not DIGITS.fullmatch(hours):
        raise ValueError(f"{quoted(text)}: hours must be digits")
    if not rest and len(minutes) > 2 and _CLOCK_SECONDS.fullmatch(minutes):
        raise ValueError(f"{quoted(text)}: only seconds may have a fraction (H:MM:SS.f)")
    if not _TWO_DIGITS.fullmatch(minutes):
        raise ValueError(f"{quoted(text)}: minutes need two digits")
    seconds = rest[0] if rest else "00"
    if not _CLOCK_SECONDS.fullmatch(seconds):
        raise ValueError(f"{quoted(text)}: seconds need two digits")
    if int(minutes) >= 60 or int(seconds[:2]) >= 60:
        raise ValueError(f"{quoted(text)}: minutes and seconds must be below 60")
    return read_number(hours, text) * 3600 + int(minutes) * 60 + read_number(seconds, text)
