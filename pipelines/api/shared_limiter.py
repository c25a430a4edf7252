"""The rate limiter of a run whose API key other runs use too: the run's own sliding log first
(no burst beyond N, slots held until sent), then a grant from the key's shared budget, so that
all runs of the key together never start more than N requests in any S-second window; a 429/408
pauses every run of the key."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator

from pipelines.api.ratelimit import RateLimiter, Slot
from pipelines.core.errors import SettingsError
from pipelines.core.settings import Settings
from pipelines.core.state_location import StateLocation
from pipelines.state.rate_budget import BudgetStore, budget_key

__all__ = ["SHARED_MARGIN", "SharedRateLimiter", "shared_limiter"]

SHARED_MARGIN = 0.1  # seconds a shared grant stays counted past the window (2 % of long ones)


class SharedSlot(Slot):
    """A local slot and its shared grant: stamped again when sent, given back when unused."""

    __slots__ = ("_budget", "_inner", "_token")

    def __init__(self, inner: Slot, budget: BudgetStore, token: str) -> None:
        self._inner, self._budget, self._token = inner, budget, token
        self._done = False

    def sent(self) -> None:
        """Stamp the local slot now and the shared grant in a worker thread."""
        if not self._done:
            self._done = True
            self._inner.sent()
            asyncio.get_running_loop().run_in_executor(None, self._budget.stamp, self._token)

    def unused(self) -> None:
        """Give both back: the request was never sent."""
        if not self._done:
            self._done = True
            self._inner.unused()
            asyncio.get_running_loop().run_in_executor(None, self._budget.release, self._token)


class SharedRateLimiter(RateLimiter):
    """A ``RateLimiter`` whose every slot also needs a grant from the key's ``BudgetStore``."""

    def __init__(
        self,
        max_requests: int,
        period: float,
        budget: BudgetStore,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        super().__init__(max_requests, period, clock=clock, sleep=sleep)
        self.budget = budget
        # Grants are stamped again once sent; the margin covers the way to the server's clock.
        self.shared_margin = max(self.margin, min(SHARED_MARGIN, period / 10))
        self._grant_turn = asyncio.Lock()  # one grant request of this run at a time

    async def hold(self) -> Slot:
        """A local slot, then the shared grant (waiting as long as the budget says)."""
        slot = await super().hold()
        try:
            async with self._grant_turn:
                window = self.period + self.shared_margin
                while True:
                    wait, token = await asyncio.to_thread(
                        self.budget.grant, self.max_requests, window
                    )
                    if not wait:
                        break
                    await self._sleep(wait)
        except BaseException:
            slot.unused()
            raise
        return SharedSlot(slot, self.budget, token)

    def pause(self, seconds: float) -> None:
        """Pause this run and, through the budget, every other run of the key."""
        super().pause(seconds)
        self.budget.pause(max(0.0, seconds))

    def close(self) -> None:
        """Close the budget's connection."""
        self.budget.close()


@contextlib.contextmanager
def shared_limiter(settings: Settings, state: StateLocation) -> Iterator[RateLimiter]:
    """The limiter of a run with ``settings``' key: its budget is in a PostgreSQL ``state``, or in
    the machine's budget file for the key (``settings.budget_folder``)."""
    if settings.api_key is None:
        raise SettingsError("STACKONE_API_KEY is not set; it is needed to deliver")
    key = budget_key(settings.api_key.get_secret_value(), settings.target)
    limiter = SharedRateLimiter(
        *settings.rate_limit, BudgetStore.open(state, key, settings.budget_folder)
    )
    try:
        yield limiter
    finally:
        limiter.close()
