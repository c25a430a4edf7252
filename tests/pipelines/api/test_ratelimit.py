"""Tests for pipelines.api.ratelimit: the limit holds in every window, is saturated, pauses hold all.

Time is virtual: an event loop whose clock jumps to the next timer whenever every task waits, so a
long run at 300/10s takes a fraction of a second and never sleeps for real.
"""

from __future__ import annotations

import asyncio
import random
import selectors
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from pipelines.api.ratelimit import RateLimiter
from pipelines.core.rate_limit import parse_rate_limit

T = TypeVar("T")


class _VirtualSelector:
    """Wraps the loop's selector: instead of blocking for ``timeout`` it moves virtual time on."""

    def __init__(self, inner: selectors.BaseSelector, loop: VirtualTimeLoop) -> None:
        self._inner = inner
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        """Advance virtual time by the loop's wait, then poll without blocking."""
        if timeout is not None and timeout > 0:
            self._loop.now += timeout
        return self._inner.select(0 if timeout is not None else 0.01)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop on virtual time: whenever every task waits, time jumps to the next timer.

    Ready callbacks always run before time moves, so ``asyncio.sleep`` and ``loop.time`` behave
    exactly as on a real loop, only instantly (the idea of the ``looptime`` pytest plugin).
    """

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self._selector = _VirtualSelector(self._selector, self)  # type: ignore[has-type,arg-type]

    def time(self) -> float:
        """Virtual seconds since the loop was created."""
        return self.now


def run_virtual(main: Callable[[VirtualTimeLoop], Coroutine[Any, Any, T]]) -> T:
    """Run ``main(loop)`` to completion on a fresh virtual-time loop."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(main(loop))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def max_in_any_window(starts: list[float], period: float) -> int:
    """The largest number of start times inside any half-open window [t, t + period)."""
    starts = sorted(starts)
    best, lo = 0, 0
    for hi, t in enumerate(starts):
        while t - starts[lo] >= period:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def simulate(
    limit: int, period: float, workers: int, total: int, latency: Callable[[], float]
) -> tuple[list[float], RateLimiter]:
    """Run ``workers`` loops that acquire, then 'send' (wait ``latency()``), to ``total`` starts."""
    starts: list[float] = []

    async def main(loop: VirtualTimeLoop) -> RateLimiter:
        limiter = RateLimiter(limit, period, clock=loop.time)

        async def worker() -> None:
            while len(starts) < total:
                await limiter.acquire()
                starts.append(loop.time())
                await asyncio.sleep(latency())

        await asyncio.gather(*(worker() for _ in range(workers)))
        return limiter

    limiter = run_virtual(main)
    return starts, limiter


def test_long_run_never_exceeds_limit_in_any_window_and_saturates_it() -> None:
    """At 300/10s, 64 workers, 0.05 to 3 s latencies: no window holds > 300 starts, ≥ 97 % used."""
    rng = random.Random(7)
    starts, limiter = simulate(300, 10.0, 64, 15_000, lambda: rng.uniform(0.05, 3.0))
    assert max_in_any_window(starts, 10.0) <= 300
    span = 450.0  # measured from the start, so the first window's grants are not a head start
    used = sum(1 for t in starts if t < span) / (300 * span / 10.0)
    assert used >= 0.97
    assert limiter.acquired >= 15_000


def test_no_initial_burst_beyond_the_limit() -> None:
    """The first window holds exactly N starts, not the ~2N a leaky bucket with burst N allows."""
    starts, _ = simulate(50, 5.0, 100, 400, lambda: 0.01)
    assert sum(1 for t in starts if t < 5.0) == 50
    assert max_in_any_window(starts, 5.0) == 50


def test_slow_responses_do_not_lower_throughput_with_enough_workers() -> None:
    """Latency far above the per-request interval is absorbed by concurrency (rate stays ≈ N/S)."""
    starts, _ = simulate(20, 1.0, 200, 2_000, lambda: 5.0)
    used = sum(1 for t in starts if t < 50.0) / (20 * 50.0)
    assert used >= 0.97
    assert max_in_any_window(starts, 1.0) <= 20


def test_pause_holds_every_waiting_acquire() -> None:
    """After ``pause(30)`` no caller, waiting or new, is granted before t = 30."""
    granted: list[float] = []

    async def main(loop: VirtualTimeLoop) -> RateLimiter:
        limiter = RateLimiter(5, 1.0, clock=loop.time)

        async def take() -> None:
            await limiter.acquire()
            granted.append(loop.time())

        await take()
        limiter.pause(30.0)
        await asyncio.gather(*(take() for _ in range(4)))
        return limiter

    limiter = run_virtual(main)
    assert granted[0] == 0.0
    assert granted[1:] == pytest.approx([30.0] * 4)
    assert limiter.acquired == 5


def test_pause_reaches_a_caller_already_waiting_for_the_window() -> None:
    """A caller sleeping for the window re-checks on waking and honours a pause set meanwhile."""
    granted: list[float] = []

    async def main(loop: VirtualTimeLoop) -> None:
        limiter = RateLimiter(1, 1.0, clock=loop.time)

        async def take() -> None:
            await limiter.acquire()
            granted.append(loop.time())

        async def pause_later() -> None:
            await asyncio.sleep(0.5)
            limiter.pause(10.0)

        await asyncio.gather(take(), take(), pause_later())

    run_virtual(main)
    assert granted == pytest.approx([0.0, 10.5])


def test_pause_never_shortens_a_longer_pause() -> None:
    """A shorter Retry-After arriving later does not cut an earlier, longer pause."""
    now = [100.0]
    limiter = RateLimiter(5, 1.0, clock=lambda: now[0])
    limiter.pause_until(140.0)
    limiter.pause(5.0)
    assert limiter.paused_until == 140.0
    limiter.pause(60.0)
    assert limiter.paused_until == 160.0


def test_injected_sleep_is_used_for_waits() -> None:
    """Waits go through the injected ``sleep``, so a test can move a fake clock, never sleeping."""
    now = [0.0]
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(2, 1.0, clock=lambda: now[0], sleep=fake_sleep, margin=0.0)

    async def main() -> None:
        for _ in range(3):
            async with limiter:
                pass

    asyncio.run(main())
    assert limiter.acquired == 3
    assert slept == [1.0]
    assert now[0] == 1.0


def test_the_margin_keeps_a_slot_a_little_past_the_window() -> None:
    """By default a slot frees 1 % of S (at most 50 ms) after the window, absorbing send lag."""
    assert RateLimiter(5, 1.0).margin == pytest.approx(0.01)
    assert RateLimiter(950, 60.0).margin == pytest.approx(0.05)
    starts, _ = simulate(3, 10.0, 3, 6, lambda: 0.0)
    assert starts[:6] == pytest.approx([0.0, 0.0, 0.0, 10.05, 10.05, 10.05])


def test_real_clock_spaces_grants_by_the_window() -> None:
    """With the real clock 10 grants at 5/0.2s take one window (≥ 0.2 s) but not much more."""
    limiter = RateLimiter(5, 0.2)

    async def main() -> float:
        began = time.monotonic()
        for _ in range(10):
            await limiter.acquire()
        return time.monotonic() - began

    elapsed = asyncio.run(main())
    assert 0.2 <= elapsed < 1.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("950/60s", (950, 60.0)),
        ("300/10s", (300, 10.0)),
        ("5/1s", (5, 1.0)),
        ("1000/1m", (1000, 60.0)),
        ("3600/1h", (3600, 3600.0)),
        (" 10 / 0.5s ", (10, 0.5)),
        ("7/s", (7, 1.0)),
    ],
)
def test_parse_rate_limit_accepts_the_documented_forms(
    text: str, expected: tuple[int, float]
) -> None:
    """``N/Ss`` with s, m or h units parses into (requests, seconds)."""
    assert parse_rate_limit(text) == expected


@pytest.mark.parametrize("text", ["950", "950/60", "950/60x", "abc", "", "0/10s", "5/0s", "-5/1s"])
def test_parse_rate_limit_rejects_other_text_with_a_clear_message(text: str) -> None:
    """Anything else is a ValueError that quotes the text and shows the expected form."""
    with pytest.raises(ValueError, match=r"rate limit"):
        parse_rate_limit(text)


def test_limiter_rejects_an_impossible_limit() -> None:
    """Zero requests or a zero period is refused at construction."""
    with pytest.raises(ValueError):
        RateLimiter(0, 1.0)
    with pytest.raises(ValueError):
        RateLimiter(1, 0.0)
