"""A sliding-log rate limiter: never more than N requests started in any S-second window.

No initial burst beyond N (a leaky bucket with burst N lets ~2N through its first window), and
``pause``/``pause_until`` hold every waiting request, so a 429's ``Retry-After`` pauses the run.
A slot is held from its grant until its request is sent (``Slot.sent``) and S seconds after that,
so time spent between grant and send (opening a connection, a busy event loop) cannot push more
than N requests into one of the server's windows.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from types import TracebackType

from pipelines.core.rate_limit import parse_rate_limit

__all__ = ["DEFAULT_MARGIN", "RateLimiter", "Slot"]

DEFAULT_MARGIN = 0.05  # a slot stays taken this long (at most 1 % of S) past the window:
# the server counts a request when it has read it, a little after the client sent it
_MIN_SLEEP = 1e-6  # a wait rounded to nothing would spin on a clock that only moves when slept


class Slot:
    """One granted request: held from the grant until ``sent`` stamps it (or ``unused`` frees it)."""

    __slots__ = ("_done", "_limiter")

    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter
        self._done = False

    def sent(self) -> None:
        """Stamp the send time (first call only): the slot stays taken S (+ margin) from now."""
        if not self._done:
            self._done = True
            self._limiter._stamp()

    def unused(self) -> None:
        """Give the slot back at once: its request was never sent (no-op once stamped)."""
        if not self._done:
            self._done = True
            self._limiter._release()


class RateLimiter:
    """Async limiter: ``await acquire()`` (or ``async with``) before each request is started.

    A slot is taken from its grant until S seconds (plus ``margin``, default 1 % of S up to 50 ms,
    the server's reading lag) after its send time; at most N slots are taken at once, so any
    S-second window holds at most N sends. ``acquire`` stamps the send at the grant; ``hold``
    returns a ``Slot`` to stamp when the request is really on the wire. Waiters go in order.
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
        self._starts: deque[float] = deque()  # send times of slots still taken, oldest first
        self._open = 0  # slots granted whose request is not sent yet
        self._stamped = asyncio.Event()
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
        """Wait until a request may start without breaking the limit or a pause; count it as sent."""
        (await self.hold()).sent()

    async def hold(self) -> Slot:
        """Wait for a free slot (and the end of any pause); call ``sent`` on it once sent."""
        held = self.period + self.margin
        async with self._turn:
            while True:
                now = self._clock()
                while self._starts and now - self._starts[0] >= held:  # a difference: exact
                    self._starts.popleft()
                wait = self._paused_until - now
                busy = len(self._starts) + self._open - self.max_requests
                if busy >= len(self._starts):  # every slot waits for its request to be sent
                    self._stamped.clear()
                    await self._stamped.wait()
                    continue
                if busy >= 0:  # the next slot frees when the (busy+1)-th oldest send ages out
                    wait = max(wait, held - (now - self._starts[busy]))
                if wait <= 0:
                    break
                await self._sleep(max(wait, _MIN_SLEEP))
            self._open += 1
            self.acquired += 1
        return Slot(self)

    def _stamp(self) -> None:
        self._open -= 1
        self._starts.append(self._clock())
        self._stamped.set()

    def _release(self) -> None:
        self._open -= 1
        self._stamped.set()

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None
