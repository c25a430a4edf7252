"""Durations written with unit words: ``1h 30m``, ``1 hr 30 mins``, ``2d 3h``, ``1,5 h``."""

from __future__ import annotations

import re
from decimal import Decimal

from transforms.durations.decimal_numbers import DIGITS, quoted, read_number

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
TEXT_PART = re.compile(
    r"([0-9]+(?:[.,][0-9]+)?)\s*([a-z]+)(?:\.(?=\s|$))?", re.ASCII | re.IGNORECASE
)
_TEXT_SEP = re.compile(r"\s*(?:,\s*|and\s+)?", re.ASCII | re.IGNORECASE)


def parse_unit_text(text: str) -> Decimal:
    """Unit text such as ``1h 30m``, ``1 hr 30 mins``, ``2d 3h``, ``1,5 h`` (any case)."""
    total, position, previous, fraction = Decimal(0), 0, Decimal("Infinity"), False
    while position < len(text):
        if position:
            position = _TEXT_SEP.match(text, position).end()  # type: ignore[union-attr]
        match = TEXT_PART.match(text, position)
        if match is None:
            rest = text[position:]
            if not rest:
                raise ValueError(f"{quoted(text)}: unexpected end")
            if DIGITS.match(rest):
                raise ValueError(f"{quoted(text)}: every number needs a unit")
            raise ValueError(f"{quoted(text)}: unexpected {rest[0]!r}")
        number, word = match.group(1), match.group(2).lower()
        if word in _CALENDAR_WORDS:
            raise ValueError(f"{quoted(text)}: months and years are ambiguous")
        if word not in _WORD_SECONDS:
            raise ValueError(f"{quoted(text)}: unknown unit {word!r}")
        if fraction:
            raise ValueError(f"{quoted(text)}: only the last part may have a fraction")
        if _WORD_SECONDS[word] >= previous:
            raise ValueError(f"{quoted(text)}: parts out of order or repeated")
        previous, fraction = _WORD_SECONDS[word], "." in number or "," in number
        total += read_number(number, text) * previous
        position = match.end()
    return total
