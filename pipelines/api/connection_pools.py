"""The client's keep-alive httpx pools: several small ones, each request on the least busy.

httpcore's per-request bookkeeping grows with the square of a pool's size (encode/httpcore#1035),
so a high concurrency gets several pools of ``POOL_CONNECTIONS``. A request's rate-limiter slot is
stamped once its headers are on the wire.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from pipelines.api.ratelimit import Slot

__all__ = ["POOL_CONNECTIONS", "open_pools", "send_on_least_busy"]

POOL_CONNECTIONS = 16  # connections per httpx pool


def open_pools(
    base_url: str,
    auth: httpx.Auth,
    concurrency: int,
    timeout: httpx.Timeout,
    transport: httpx.AsyncBaseTransport | None,
) -> list[httpx.AsyncClient]:
    """``concurrency`` connections in all, split into pools (one pool on an injected transport)."""
    pools = 1 if transport is not None else math.ceil(concurrency / POOL_CONNECTIONS)
    size = math.ceil(concurrency / pools)
    tls = httpx.create_ssl_context() if transport is None else True  # built once, ~0.2 s
    return [
        httpx.AsyncClient(
            base_url=base_url,
            auth=auth,
            headers={"Accept": "application/json", "User-Agent": "lms-sync"},
            timeout=timeout,
            limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
            transport=transport,
            verify=tls,
            trust_env=True,
            follow_redirects=False,
        )
        for _ in range(pools)
    ]


async def send_on_least_busy(
    pools: list[httpx.AsyncClient],
    in_flight: list[int],
    slot: Slot,
    method: str,
    path: str,
    **options: Any,
) -> httpx.Response:
    """One HTTP request on the pool with the fewest ``in_flight``; ``slot`` is stamped when sent."""
    pool = min(range(len(pools)), key=in_flight.__getitem__)
    in_flight[pool] += 1
    try:
        return await pools[pool].request(
            method, path, extensions={"trace": _stamp_when_sent(slot)}, **options
        )
    finally:
        in_flight[pool] -= 1
        slot.sent()  # no trace event (a mock transport, a failed connect): counted as sent now


def _stamp_when_sent(slot: Slot) -> Callable[[str, dict[str, Any]], Awaitable[None]]:
    """An httpx ``trace`` hook that stamps ``slot`` once the request headers are on the wire.

    The server counts a request on reading it; stamping at the grant instead would let the time
    spent opening a connection or waiting for the event loop push N+1 sends into its window.
    """

    async def trace(event: str, info: dict[str, Any]) -> None:
        if event.endswith("send_request_headers.complete"):
            slot.sent()

    return trace
