"""Exact decimal numbers of duration values: number tokens, their bounds, the quoted value.

Exact decimal arithmetic throughout: every parser runs under ``EXACT`` and reads numbers here.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Context, Decimal

NUMBER = r"(?:[0-9]+(?:[.,][0-9]+)?|[.,][0-9]+)"
BARE_NUMBER = re.compile(NUMBER, re.ASCII)
DIGITS = re.compile(r"[0-9]+", re.ASCII)
MAX_DIGITS = 40
# Precision far above any accepted input (40 digits times 604800), so arithmetic stays exact.
EXACT = Context(prec=100, rounding=ROUND_HALF_UP)


def quoted(text: str) -> str:
    """The offending value quoted for a message, shortened when very long."""
    return f"'{text}'" if len(text) <= 60 else f"'{text[:57]}...'"


def read_number(token: str, text: str) -> Decimal:
    """One number token (decimal point or comma) of ``text``, bounded so arithmetic stays exact."""
    if len(token) > MAX_DIGITS:
        raise ValueError(f"{quoted(text)}: number has more than {MAX_DIGITS} digits")
    return Decimal(token.replace(",", "."))


def non_negative(seconds: Decimal, text: str) -> Decimal:
    """``seconds`` if it is a usable amount (finite, not negative, bounded), else ValueError."""
    if not seconds.is_finite():
        raise ValueError(f"{quoted(text)} is not a finite number")
    if seconds < 0:
        raise ValueError(f"negative duration {quoted(text)}")
    if seconds.adjusted() >= MAX_DIGITS:
        raise ValueError(f"{quoted(text)}: number has more than {MAX_DIGITS} digits")
    return seconds
