"""Rows repeated inside one run collapse to one: the others are duplicate_in_file (DESIGN §5)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.run.key_set import KeySet, first_of_each, valid_words


class RepeatTracker:
    """Remembers the idempotency keys a run has kept, across chunks and files, 16 bytes a key.

    ``repeats: first`` keeps a key's first row. ``repeats: last`` needs to know the future, so the
    run first feeds every chunk's keys to :meth:`prime` (a cheap pre-pass) and then keeps the row
    whose ordinal (position in the run) is the last one seen for its key.

    A delivering run knows most keys up front (the ledger's delivered keys): :meth:`place` tells
    where the next chunk's keys sit among them, and those are then remembered as one byte each.
    """

    def __init__(self, keep: str = "first") -> None:
        self.keep = keep
        self._keys = KeySet()
        self._known: npt.NDArray[np.uint8] | None = None  # by position among known keys
        self._slots: npt.NDArray[np.intp] | None = None  # the next chunk's positions

    @property
    def nbytes(self) -> int:
        """Memory held for the keys seen so far."""
        return self._keys.nbytes + (0 if self._known is None else self._known.nbytes)

    def place(self, slots: npt.NDArray[np.intp], known: int) -> None:
        """Where each row of the next chunk given to :meth:`repeats` has its key among ``known``
        keys fixed for the run (-1: not among them, or no key). ``first`` only; place every chunk
        or none, so that one key is always remembered in the same place."""
        if self.keep != "first":
            return
        if self._known is None:
            self._known = np.zeros(known, np.uint8)
        if known != len(self._known):
            raise ValueError(f"placed among {known} known keys, not {len(self._known)}")
        self._slots = slots

    def prime(self, keys: pa.Array, ordinals: pa.Array) -> None:
        """Pre-pass for ``last``: remember the latest ordinal of each key."""
        words, rows = valid_words(keys)
        order, first = first_of_each(words[::-1])  # reversed: "first" is the chunk's last row
        distinct = order[first]
        latest = np.asarray(ordinals, np.int64)[rows[::-1][distinct]]
        index = self._keys.find(words[::-1][distinct])
        known = index >= 0
        self._keys.set_values(index[known], latest[known])
        self._keys.add(np.ascontiguousarray(words[::-1][distinct][~known]), latest[~known])

    def repeats(self, keys: pa.Array, ordinals: pa.Array) -> pa.Array:
        """Boolean per row: true where the row's key is kept from another row (nulls: false)."""
        repeat = np.zeros(len(keys), np.bool_)
        if self.keep == "last":
            words, rows = valid_words(keys)
            kept = self._keys.values_at(self._keys.find(words))
            repeat[rows] = kept != np.asarray(ordinals, np.int64)[rows]
            return pa.array(repeat)
        slots, self._slots = self._slots, None
        if slots is None:
            return pa.array(self._first(keys))
        if len(slots) != len(keys):
            raise ValueError(f"{len(slots)} places for {len(keys)} keys")
        placed = np.flatnonzero(slots >= 0)
        repeat[placed] = self._first_placed(slots[placed])
        elsewhere = np.flatnonzero(slots < 0)
        repeat[elsewhere] = self._first(pc.take(keys, pa.array(elsewhere)))
        return pa.array(repeat)

    def _first(self, keys: pa.Array) -> npt.NDArray[np.bool_]:
        """``first`` in the key set: a later row of a key in this chunk or an earlier one repeats."""
        repeat = np.zeros(len(keys), np.bool_)
        words, rows = valid_words(keys)
        order, first = first_of_each(words)
        distinct = words[order[first]]
        index = self._keys.find(distinct)
        seen = np.ones(len(order), np.bool_)
        seen[first] = index >= 0
        repeat[rows[order]] = seen
        self._keys.add(distinct[index < 0])
        return repeat

    def _first_placed(self, slots: npt.NDArray[np.intp]) -> npt.NDArray[np.bool_]:
        """``first`` among the known keys, by position: one byte a key (its SEEN bit)."""
        known = self._known
        assert known is not None
        repeat = (known[slots] & _SEEN).astype(np.bool_)  # kept in an earlier chunk
        ordered = np.sort(slots)
        twice = ordered[1:][ordered[1:] == ordered[:-1]]
        if len(twice):  # keys on several rows of this chunk: all but the first repeat
            known[twice] |= _MARK
            rows = np.flatnonzero(known[slots] & _MARK)  # few: sorted by key, stably
            known[twice] &= ~_MARK
            order = rows[np.argsort(slots[rows], kind="stable")]
            later = np.zeros(len(order), np.bool_)
            later[1:] = slots[order[1:]] == slots[order[:-1]]
            repeat[order[later]] = True
        known[slots] |= _SEEN
        return repeat


_SEEN, _MARK = np.uint8(1), np.uint8(2)  # a known key's byte: kept in the run; scratch
