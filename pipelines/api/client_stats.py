"""The client's request counters, read by the run report."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["ClientStats"]


@dataclass
class ClientStats:
    """Request counters for the run report (every request, retries and lookups included)."""

    sent: int = 0
    retries: int = 0
    status_429: int = 0
    transport_errors: int = 0
    pauses: list[float] = field(default_factory=list)  # seconds of each 429/408 Retry-After pause
    by_status: Counter[int] = field(default_factory=Counter)
