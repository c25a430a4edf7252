"""A delivering run's lease on the keys it has claimed: long enough for a request and its retry
(at least twice the request timeout), renewed every third of it; a run that could not renew in
time stops sending (another run may take its keys over once the lease expires)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from pipelines.core.errors import AbortError
from pipelines.state.ledger import Ledger

__all__ = ["MIN_LEASE_SECONDS", "Lease", "lease_for", "renewing"]

MIN_LEASE_SECONDS = 5.0
_SAFETY = 0.8  # stop sending once 80 % of the last renewed lease has passed


def lease_for(request_timeout: float) -> float:
    """The lease of a run whose requests time out after ``request_timeout`` seconds."""
    return max(MIN_LEASE_SECONDS, 2 * request_timeout)


@dataclass
class Lease:
    """How long claims last, and until when this run's are known to be valid (monotonic)."""

    seconds: float = MIN_LEASE_SECONDS
    valid_until: float = field(default_factory=lambda: float("inf"))

    def renewed(self, at: float) -> None:
        """The leases were renewed (the renewal began at monotonic ``at``)."""
        self.valid_until = at + self.seconds * _SAFETY

    def check(self) -> None:
        """AbortError when the claims may have expired: nothing more may be sent."""
        if time.monotonic() > self.valid_until:
            raise AbortError(
                "the claims on keys could not be renewed in time (state store unreachable?): "
                "stopping; keys in flight stay in doubt and are reconciled by the next run"
            )


@asynccontextmanager
async def renewing(ledger: Ledger, lease: Lease) -> AsyncIterator[None]:
    """Renew the run's leases every third of the lease while the block runs."""
    lease.renewed(time.monotonic())

    async def renew() -> None:
        while True:
            await asyncio.sleep(lease.seconds / 3)
            started = time.monotonic()
            try:
                await asyncio.to_thread(ledger.renew, lease.seconds)
            except Exception:
                continue
            lease.renewed(started)

    task = asyncio.create_task(renew())
    try:
        yield
    finally:
        task.cancel()
