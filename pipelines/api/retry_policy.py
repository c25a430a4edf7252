"""When a StackOne request is tried again (DESIGN §7): what retries, how long to wait, when to stop.

429/408 are waited out (``Retry-After``), 5xx but 501 and transport errors are retried with full-jitter
backoff, and too many rows in a row without any answer mean the API is unreachable.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC

import httpx

from pipelines.core.errors import AbortError

__all__ = [
    "DEFAULT_RETRY_AFTER",
    "MAX_RETRY_AFTER",
    "MAX_THROTTLED",
    "THROTTLE_STATUSES",
    "TRANSIENT_ERRORS",
    "UNREACHABLE_AFTER",
    "Tries",
    "Unreachable",
    "UnreachableGuard",
    "backoff_delay",
    "is_retried_server_error",
    "retry_after",
]

DEFAULT_RETRY_AFTER = 5.0  # seconds to pause on a 429/408 without a usable Retry-After
MAX_RETRY_AFTER = 900.0  # a longer Retry-After is capped (the next 429 asks again)
MAX_THROTTLED = 50  # 429/408 answers one request waits out before it is retries_exhausted
UNREACHABLE_AFTER = 10  # rows in a row that got no HTTP answer at all: the API is unreachable
THROTTLE_STATUSES = frozenset({408, 429})
# No HTTP answer, but trying again may get one (DNS, refused, reset, dropped, timeouts, proxy).
TRANSIENT_ERRORS = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    httpx.ProxyError,
)


@dataclass
class Tries:
    """One request's counters: requests sent, failures (5xx, no answer), 429/408 waited out."""

    attempts: int = 0
    failures: int = 0
    throttled: int = 0


def is_retried_server_error(status: int) -> bool:
    """A 5xx is retried with backoff, except 501 (the endpoint does not exist: abort)."""
    return status >= 500 and status != 501


def backoff_delay(failures: int, base: float, cap: float, jitter: Callable[[], float]) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**(failures-1))]."""
    return jitter() * min(cap, base * 2 ** (failures - 1))


def retry_after(response: httpx.Response, wall_clock: Callable[[], float]) -> float:
    """Seconds to pause from ``Retry-After`` (seconds or HTTP date), bounded and defaulted."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return DEFAULT_RETRY_AFTER
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return DEFAULT_RETRY_AFTER
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - wall_clock()
    if not math.isfinite(seconds):
        return DEFAULT_RETRY_AFTER
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


class Unreachable(AbortError):
    """Internal: too many rows in a row got no answer; the last one may have been stored."""


class UnreachableGuard:
    """Counts rows in a row that got no HTTP answer; ``UNREACHABLE_AFTER`` of them abort the run."""

    def __init__(self, base_url: str, max_attempts: int) -> None:
        self._base_url = base_url
        self._max_attempts = max_attempts
        self._in_a_row = 0

    def answered(self) -> None:
        """A request got an HTTP answer: the API is reachable."""
        self._in_a_row = 0

    def unanswered(self, error: str | None) -> None:
        """A row ran out of attempts without an answer; raise ``Unreachable`` at the limit."""
        self._in_a_row += 1
        if self._in_a_row >= UNREACHABLE_AFTER:
            raise Unreachable(
                f"the API at {self._base_url} is unreachable: {UNREACHABLE_AFTER} requests in a "
                f"row got no answer after {self._max_attempts} attempts ({error})"
            )
