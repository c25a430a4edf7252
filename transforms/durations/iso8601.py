"""ISO 8601 durations ``PnYnMnWnDTnHnMnS``, read strictly (order, sides of T, one fraction)."""

from __future__ import annotations

import re
from decimal import Decimal

from transforms.durations.decimal_numbers import BARE_NUMBER, NUMBER, quoted, read_number

_ISO_SECONDS = {"W": 604800, "D": 86400, "H": 3600, "M": 60, "S": 1}
_ISO_PART = re.compile(rf"({NUMBER})([A-Z])", re.ASCII)


def parse_iso(text: str) -> Decimal:
    """ISO 8601 ``PnYnMnWnDTnHnMnS``; non-zero years or months have no fixed length."""
    date, has_t, time = text[1:].upper().partition("T")
    if not date and not has_t:
        raise ValueError(f"{quoted(text)}: ISO duration has no parts")
    if has_t and not time:
        raise ValueError(f"{quoted(text)}: T must be followed by hours, minutes or seconds")
    parts = _iso_parts(date, "YMWD", "HS", text) + _iso_parts(time, "HMS", "YWD", text)
    if any(c in number for number, _, _ in parts[:-1] for c in ".,"):
        raise ValueError(f"{quoted(text)}: only the last part may have a fraction")
    total = Decimal(0)
    for number, designator, in_date in parts:
        value = read_number(number, text)
        if in_date and designator in "YM":
            if value:
                raise ValueError(f"{quoted(text)}: years and months are ambiguous")
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
            bare = BARE_NUMBER.match(section, position)
            reason = "number without designator" if bare else f"unexpected {section[position]!r}"
            raise ValueError(f"{quoted(text)}: {reason}")
        number, designator = match.groups()
        if designator in other_side:
            side = "after" if order == "YMWD" else "before"
            raise ValueError(f"{quoted(text)}: {designator} belongs {side} T")
        if designator not in order:
            raise ValueError(f"{quoted(text)}: unknown designator {designator!r}")
        if order.index(designator) <= last:
            raise ValueError(f"{quoted(text)}: parts out of order or repeated")
        last = order.index(designator)
        parts.append((number, designator, order == "YMWD"))
        position = match.end()
    return parts
