"""Delivery in slices: up to N consecutive rows of one file handed to the client, watched until
every one of them has an outcome, so a timeline (Prefect task runs) shows where the time went.

A slice starts when its first row is handed to the client and ends when its last row is answered
(or the run stops and leaves it pending). Slices only watch: the client's one pool of workers and
its one rate limiter send every row, so watching never serialises delivery.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from pipelines.core.outcomes import OUTCOMES, RowOutcome

__all__ = ["SLICE_ROWS", "DeliverySlice", "SliceTracker", "WatchSlice"]

SLICE_ROWS = 2_000  # about two minutes at the default 950/60s: a timeline that moves


@dataclass
class DeliverySlice:
    """Up to ``size`` rows of one file, in the order they were handed to the client."""

    number: int  # 1-based, across the run
    source: str  # the file's name
    first_row: int  # 1-based record number of the slice's first row in its file
    size: int
    last_row: int = 0
    taken: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    sealed: bool = False  # no more rows join it
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def settled(self) -> int:
        """Rows of the slice that have an outcome."""
        return sum(self.outcomes.values())

    def counts(self) -> dict[str, int]:
        """Rows per outcome (only outcomes that occurred), plus ``rows``."""
        kept = {name.value: self.outcomes[name] for name in OUTCOMES if self.outcomes[name]}
        return {"rows": self.taken, **kept}

    def summary(self) -> str:
        """``10 rows (1-24 of a.csv): delivered 9, failed 1`` — counts, never a row's data."""
        kept = ", ".join(
            f"{name} {count:,}" for name, count in self.counts().items() if name != "rows"
        )
        rows = f"{self.first_row:,}-{self.last_row:,}" if self.taken else "none"
        return f"{self.taken:,} rows ({rows} of {self.source}): {kept or 'nothing sent'}"

    async def finished(self) -> dict[str, int]:
        """Wait until every row of the slice has an outcome; its counts."""
        await self.done.wait()
        return self.counts()

    def _check_done(self) -> None:
        if self.sealed and self.settled >= self.taken:
            self.done.set()


WatchSlice = Callable[[DeliverySlice], Awaitable[object]]


class SliceTracker:
    """Groups the rows handed to the client into slices; ``watch`` is started for each slice."""

    def __init__(self, watch: WatchSlice, size: int = SLICE_ROWS) -> None:
        if size < 1:
            raise ValueError("a delivery slice holds at least one row")
        self.size = size
        self._watch = watch
        self._current: DeliverySlice | None = None
        self._of_key: dict[str, DeliverySlice] = {}
        self._watchers: list[asyncio.Future[object]] = []
        self.slices: list[DeliverySlice] = []

    def taken(self, key: str, source: str, row: int) -> None:
        """A row (``key``, record ``row`` of file ``source``) was handed to the client."""
        current = self._current
        if current is None or current.taken >= current.size or current.source != source:
            if current is not None:
                self._seal(current)
            current = self._current = DeliverySlice(len(self.slices) + 1, source, row, self.size)
            self.slices.append(current)
            self._watchers.append(asyncio.ensure_future(self._watch(current)))
        current.taken += 1
        current.last_row = max(current.last_row, row)
        self._of_key[key] = current

    def settled(self, key: str, outcome: str) -> None:
        """The row of ``key`` ended in ``outcome`` (a row not handed out here is ignored)."""
        piece = self._of_key.pop(key, None)
        if piece is not None:
            piece.outcomes[outcome] += 1
            piece._check_done()

    def settle_rest(self) -> None:
        """The run is over: rows without an outcome are pending, every slice ends."""
        for piece in self._of_key.values():
            piece.outcomes[RowOutcome.PENDING] += 1
        self._of_key.clear()
        for piece in self.slices:
            self._seal(piece)
        self._current = None

    async def close(self) -> None:
        """Settle what is left and wait for every watcher (e.g. its task run) to finish."""
        self.settle_rest()
        if self._watchers:
            await asyncio.gather(*self._watchers, return_exceptions=True)
        self._watchers.clear()

    def _seal(self, piece: DeliverySlice) -> None:
        piece.sealed = True
        piece._check_done()
