"""The in-memory snapshot of a target's ledger keys: sorted 64-bit halves searched by whole
columns (a bucket table over the first halves, ``SortedIndex``), plus the keys this ledger
instance wrote since loading."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from pipelines.state.sorted_index import SortedIndex

__all__ = ["KeySet", "KeySnapshot"]


@dataclass
class KeySet:
    """16-byte keys sorted as (high, low) unsigned 64-bit halves, searched by whole columns."""

    hi: npt.NDArray[np.uint64]
    lo: npt.NDArray[np.uint64]
    shared_hi: bool  # two keys share their first 8 bytes (astronomically rare, but handled)
    index: SortedIndex = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.index = SortedIndex(self.hi)

    @classmethod
    def build(
        cls, hi: npt.NDArray[np.uint64], lo: npt.NDArray[np.uint64]
    ) -> tuple[KeySet, npt.NDArray[np.intp] | None]:
        """The sorted set, and the permutation that sorted it (None: it came in order)."""
        order = None
        if not bool(np.all((hi[1:] > hi[:-1]) | ((hi[1:] == hi[:-1]) & (lo[1:] > lo[:-1])))):
            order = np.lexsort((lo, hi))
            hi, lo = hi[order], lo[order]
        return cls(hi, lo, bool(np.any(hi[1:] == hi[:-1]))), order

    def find(self, hi: npt.NDArray[np.uint64], lo: npt.NDArray[np.uint64]) -> npt.NDArray[np.intp]:
        """Position of each key in the set, -1 where absent."""
        if len(self.hi) == 0:
            return np.full(len(hi), -1, dtype=np.intp)
        at = np.minimum(self.index.left(hi), len(self.hi) - 1)
        same_hi = self.hi[at] == hi
        exact = same_hi & (self.lo[at] == lo)
        found = np.where(exact, at, -1)
        if self.shared_hi:
            for i in np.flatnonzero(same_hi & ~exact):
                end = int(np.searchsorted(self.hi, hi[i], side="right"))
                j = int(at[i]) + int(np.searchsorted(self.lo[at[i] : end], lo[i]))
                if j < end and self.lo[j] == lo[i]:
                    found[i] = j
        return found


@dataclass
class KeySnapshot:
    """The target's keys as loaded, plus the first halves of keys this instance wrote since."""

    delivered: KeySet
    # The first 8 bytes of each delivered key's body hash (native order): half the memory, and
    # a changed body still differs there but for a 2^-64 chance.
    bodies: npt.NDArray[np.uint64]
    others: KeySet
    other_status: npt.NDArray[np.int8]

    def __post_init__(self) -> None:
        self._written: npt.NDArray[np.uint64] = np.empty(0, dtype=np.uint64)
        self._pending: list[npt.NDArray[np.uint64]] = []

    def wrote(self, hi: npt.NDArray[np.uint64]) -> None:
        """Remember keys written after loading; classify asks SQLite about them."""
        self._pending.append(hi)

    def written_since(self, hi: npt.NDArray[np.uint64]) -> npt.NDArray[np.bool_]:
        """Which of these keys may have changed since loading (a first-half match suffices)."""
        if self._pending:
            self._written = np.unique(np.concatenate([self._written, *self._pending]))
            self._pending = []
        if len(self._written) == 0:
            return np.zeros(len(hi), dtype=bool)
        at = np.minimum(np.searchsorted(self._written, hi), len(self._written) - 1)
        return self._written[at] == hi
