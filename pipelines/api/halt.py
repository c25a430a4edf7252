"""The stop switch of a ``deliver`` run: once set, limiter and backoff waits end in ``Halted``.

A row whose wait is cut short stays pending (no result); it may be in doubt if an earlier try failed.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable
from typing import Any, TypeVar

__all__ = ["Halt", "Halted", "wait_unless_halted"]

_T = TypeVar("_T")


class Halted(Exception):
    """Internal: ``deliver`` is stopping, so this row is left without a result (pending).

    ``maybe_sent``: an earlier attempt got no answer or a 5xx, so the API may have stored it.
    """

    def __init__(self, maybe_sent: bool = False) -> None:
        super().__init__()
        self.maybe_sent = maybe_sent


class Halt:
    """A ``deliver`` run's stop switch: once set, waits (limiter, backoff) end in ``Halted``.

    Waits are awaited directly (no helper task, so a limiter grant turns into a send at once);
    ``set`` cancels the tasks waiting and ``wait`` turns that cancellation into ``Halted``.
    """

    def __init__(self) -> None:
        self.is_set = False
        self._waiting: set[asyncio.Task[Any]] = set()

    def set(self) -> None:
        """Stop: cut every wait in progress short; later waits end at once."""
        if not self.is_set:
            self.is_set = True
            for task in self._waiting:
                task.cancel()

    async def wait(self, waiting: Awaitable[_T]) -> _T:
        """Await ``waiting`` unless stopped meanwhile (then ``Halted``)."""
        task = asyncio.current_task()
        if self.is_set or task is None:
            if inspect.iscoroutine(waiting):
                waiting.close()  # never started: no "was never awaited" warning
            raise Halted
        self._waiting.add(task)
        try:
            return await waiting
        except asyncio.CancelledError:
            if self.is_set and task.uncancel() == 0:  # our cancel, not the caller's
                raise Halted from None
            raise
        finally:
            self._waiting.discard(task)


async def wait_unless_halted(waiting: Awaitable[_T], halt: Halt | None, *, maybe_sent: bool) -> _T:
    """Await a limiter grant or a backoff sleep; with ``halt``, stopping cuts it short.

    ``maybe_sent``: an earlier attempt of this request may have been stored (see ``Halted``).
    """
    if halt is None:
        return await waiting
    try:
        return await halt.wait(waiting)
    except Halted:
        raise Halted(maybe_sent) from None
