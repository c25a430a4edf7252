"""The rate-limit setting ``N/Ss``: at most N requests started in any S-second window."""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = ["RateLimit", "parse_rate_limit"]

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(s|m|h)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0}


class RateLimit(NamedTuple):
    """At most ``requests`` requests started in any ``period``-second window."""

    requests: int
    period: float

    def __str__(self) -> str:
        return f"{self.requests}/{self.period:g}s"


def parse_rate_limit(text: str) -> tuple[int, float]:
    """Read ``N/Ss`` (or ``N/Mm``, ``N/Hh``) into (count, seconds): ``"950/60s"`` → (950, 60.0)."""
    match = _RATE.match(text)
    if match is None:
        raise ValueError(
            f"rate limit {text!r} is not N/<period><unit>, e.g. 950/60s, 300/10s or 1000/1m"
        )
    requests = int(match.group(1))
    period = float(match.group(2) or 1) * _UNIT_SECONDS[match.group(3).lower()]
    if requests < 1 or period <= 0:
        raise ValueError(f"rate limit {text!r} needs at least 1 request per positive period")
    return requests, period
