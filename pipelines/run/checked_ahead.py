"""Checking chunks ahead on a worker thread while the caller settles and writes the previous one.

Arrow compute, numpy and the key kernel release the GIL, so checking chunk n + 1 while chunk n is
settled (repeats, dead-letter, payloads.jsonl) uses a second core. Results come back in order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

DEFAULT_AHEAD = 2  # chunks checked ahead on threads (2 cores: the caller settles meanwhile)


def checked_ahead(
    items: Iterable[Item], check: Callable[[Item], Result], ahead: int = DEFAULT_AHEAD
) -> Generator[tuple[Item, Result], None, None]:
    """``(item, check(item))`` in order, ``check`` running up to ``ahead`` items ahead on threads
    (0: in the caller's thread). Leaving early cancels what has not started."""
    if ahead < 1:
        for item in items:
            yield item, check(item)
        return
    pool = ThreadPoolExecutor(max_workers=ahead, thread_name_prefix="check-ahead")
    pending: deque[tuple[Item, Future[Result]]] = deque()
    try:
        for item in items:
            pending.append((item, pool.submit(check, item)))
            if len(pending) > ahead:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
