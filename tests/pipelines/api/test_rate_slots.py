"""Rate-limit slots are held from grant until the request is on the wire; pools stay small."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from pipelines.api.client import StackOneClient
from pipelines.api.completions import Submission
from pipelines.api.connection_pools import POOL_CONNECTIONS
from pipelines.api.ratelimit import RateLimiter
from tests.pipelines.api.test_ratelimit import VirtualTimeLoop, run_virtual


def test_a_slot_is_held_until_its_request_is_sent() -> None:
    """A send 3 s after its grant keeps the slot S seconds from the send, not from the grant."""
    granted: list[float] = []

    async def main(loop: VirtualTimeLoop) -> None:
        limiter = RateLimiter(1, 10.0, clock=loop.time, margin=0.0)
        slot = await limiter.hold()
        await asyncio.sleep(3.0)  # e.g. a slow connect before the bytes go out
        slot.sent()
        await limiter.acquire()
        granted.append(loop.time())

    run_virtual(main)
    assert granted == pytest.approx([13.0])


def test_an_unused_slot_is_given_back_at_once() -> None:
    """A grant whose request is never sent frees its slot immediately."""

    async def main(loop: VirtualTimeLoop) -> float:
        limiter = RateLimiter(1, 10.0, clock=loop.time)
        (await limiter.hold()).unused()
        await limiter.acquire()
        return loop.time()

    assert run_virtual(main) == 0.0


def test_a_waiter_wakes_when_an_open_slot_is_stamped() -> None:
    """With every slot granted but unsent, the next grant waits for a stamp plus the window."""

    async def main(loop: VirtualTimeLoop) -> float:
        limiter = RateLimiter(1, 2.0, clock=loop.time, margin=0.0)
        slot = await limiter.hold()
        loop.call_later(1.0, slot.sent)
        await limiter.acquire()
        return loop.time()

    assert run_virtual(main) == pytest.approx(3.0)


def test_high_concurrency_is_split_into_small_pools() -> None:
    """128 connections become 8 pools of 16, so httpcore's per-request scan stays small."""

    async def main() -> tuple[int, int]:
        async with StackOneClient("k", base_url="https://api.example", concurrency=128) as client:
            return len(client._pools), client._pools[0]._transport._pool._max_connections  # type: ignore[attr-defined]

    pools, size = asyncio.run(main())
    assert pools * size == 128 and size == POOL_CONNECTIONS


def test_requests_go_to_the_least_busy_pool() -> None:
    """Concurrent requests spread over the pools instead of queuing in one."""

    async def main() -> list[int]:
        seen: list[int] = []
        async with StackOneClient("k", base_url="https://api.example", concurrency=32) as client:
            gate = asyncio.Event()

            async def fake(request: httpx.Request) -> httpx.Response:
                seen.append(list(client._in_flight).count(0))
                await gate.wait()
                return httpx.Response(201, json={"data": {"id": "x"}})

            for pool in client._pools:
                pool._transport = httpx.MockTransport(fake)  # type: ignore[attr-defined]
            subs = [Submission(f"k{i}", "acc", f"u{i}", b"{}") for i in range(2)]
            task = asyncio.gather(*(client.submit(s) for s in subs))
            await asyncio.sleep(0.01)
            gate.set()
            await task
            return seen

    assert asyncio.run(main()) == [1, 0]
