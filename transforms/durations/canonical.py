"""The canonical ISO 8601 text of a duration: H/M/S only, seconds to 3 decimals (DESIGN §5)."""

from __future__ import annotations

from decimal import Decimal

from transforms.durations.decimal_numbers import EXACT, MAX_DIGITS

_MILLI = Decimal("0.001")


def format_duration(seconds: Decimal) -> str:
    """Canonical ISO 8601: H/M/S only, zero parts omitted, seconds to 3 decimals half-up."""
    seconds = Decimal(seconds)
    if not seconds.is_finite() or seconds < 0 or seconds.adjusted() > MAX_DIGITS + 10:
        raise ValueError(f"cannot write {seconds} s as a duration")
    millis = int(seconds.quantize(_MILLI, context=EXACT).scaleb(3, context=EXACT))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    whole, millis = divmod(millis, 1000)
    text = "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    if whole or millis:
        text += f"{whole}.{millis:03d}".rstrip("0").rstrip(".") + "S"
    return "PT0S" if text == "PT" else text
