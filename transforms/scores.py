"""``score`` converter: 87, 87%, 87,5, 0.87 (fraction), 87/100, 8.7/10 → percentage (DESIGN §5)."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

import pyarrow as pa
import pyarrow.compute as pc

from transforms.converted import Converted
from transforms.distinct import convert_distinct

SCALES = ("percent", "fraction")
_NUMBER = r"\d+(?:[.,]\d+)?|[.,]\d+"
_SCORE = re.compile(rf"^(?P<n>-?(?:{_NUMBER}))\s*(?:(?P<pct>%)|/\s*(?P<d>{_NUMBER}))?$")
_HUNDREDTH = Decimal("0.01")


def parse_score(text: str, scale: str = "percent") -> float:
    """One score text → percentage rounded half-up to 2 decimals; ValueError says why not."""
    match = _SCORE.match(text.strip())
    if match is None:
        raise ValueError(f"score {text!r} is not a number, percentage or ratio like 87/100")
    try:
        number = Decimal(match["n"].replace(",", "."))
        if match["d"] is not None:
            denominator = Decimal(match["d"].replace(",", "."))
            if denominator == 0:
                raise ValueError(f"score {text!r} divides by zero")
            percentage = number / denominator * 100
        elif match["pct"] is None and scale == "fraction":
            percentage = number * 100
        else:
            percentage = number
    except InvalidOperation:
        raise ValueError(f"score {text!r} is not a number") from None
    return _checked(percentage, text)


def to_scores(values: pa.Array, scale: str = "percent") -> Converted:
    """Whole column → percentages (float64); text columns are parsed per distinct value."""
    if (
        pa.types.is_integer(values.type)
        or pa.types.is_floating(values.type)
        or pa.types.is_decimal(values.type)
    ):
        values = pc.cast(values, pa.string())
    return convert_distinct(values, lambda t: parse_score(t, scale), pa.float64(), "invalid_score")


def _checked(percentage: Decimal, text: str) -> float:
    rounded = percentage.quantize(_HUNDREDTH, rounding=ROUND_HALF_UP)
    if not Decimal(0) <= rounded <= Decimal(100):
        raise ValueError(f"score {text!r} is {rounded}%, outside 0..100")
    return float(rounded) or 0.0  # "-0" and "-0.001" are 0, not -0.0
