"""A sliding-log rate limiter: never more than N requests started in any S-second window.

No initial burst beyond N (a leaky bucket with burst N lets ~2N through its first window), and
``pause``/``pause_until`` hold every waiting request, so a 429's ``Retry-After`` pauses the run.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from types import TracebackType

__all__ = ["DEFAULT_MARGIN", "RateLimiter", "parse_rate_limit"]

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(s|m|h)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0}
DEFAULT_MARGIN = 0.05  # a slot stays taken this long (at most 1 % of S) past the window
_MIN_SLEEP = 1e-6  # a wait rounded to nothing would spin on a clock that only moves when slept


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


class RateLimiter:
    """Async limiter: ``await acquire()`` (or ``async with``) before each request is started.

    It keeps the start times of the last N grants; a new grant waits until the oldest is S seconds
    old (plus ``margin``, default 1 % of S up to 50 ms, so a send a few ms after its grant still
    keeps the limit), so any S-second window holds at most N starts. Waiters go in arrival order.
    """

    def __init__(
        self,
        max_requests: int,
        period: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        margin: float | None = None,
    ) -> None:
        if max_requests < 1 or period <= 0 or (margin is not None and margin < 0):
            raise ValueError("a rate limit needs max_requests >= 1, period > 0 and margin >= 0")
        self.max_requests = max_requests
        self.period = period
        self.margin = min(DEFAULT_MARGIN, period / 100) if margin is None else margin
        self.acquired = 0
        self._clock = clock
        self._sleep = sleep
        self._starts: deque[float] = deque(maxlen=max_requests)
        self._paused_until = float("-inf")
        self._turn = asyncio.Lock()

    @classmethod
    def from_text(
        cls,
        text: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        margin: float | None = None,
    ) -> RateLimiter:
        """Build from ``N/Ss`` text such as ``"950/60s"``."""
        requests, period = parse_rate_limit(text)
        return cls(requests, period, clock=clock, sleep=sleep, margin=margin)

    def __repr__(self) -> str:
        return f"RateLimiter({self.max_requests}/{self.period:g}s, acquired={self.acquired})"

    @property
    def paused_until(self) -> float:
        """Clock time before which no request is granted (``-inf`` when not paused)."""
        return self._paused_until

    def pause_until(self, deadline: float) -> None:
        """Hold every request until ``deadline`` (this limiter's clock); never shortens a pause."""
        self._paused_until = max(self._paused_until, deadline)

    def pause(self, seconds: float) -> None:
        """Hold every request for ``seconds`` from now (e.g. a 429's ``Retry-After``)."""
        self.pause_until(self._clock() + max(0.0, seconds))

    async def acquire(self) -> None:
        """Wait until a request may start without breaking the limit or a pause, then count it."""
        async with self._turn:
            while True:
                now = self._clock()
                wait = self._paused_until - now
                if len(self._starts) == self.max_requests:
                    elapsed = now - self._starts[0]  # compared as a difference: exact at the edge
                    if elapsed < self.period + self.margin:
                        wait = max(wait, self.period + self.margin - elapsed)
                if wait <= 0:
                    break
                await self._sleep(max(wait, _MIN_SLEEP))
            self._starts.append(now)
            self.acquired += 1

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None
