"""Rows repeated inside one run collapse to one: the others are duplicate_in_file (DESIGN §5)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from pipelines.run.key_set import KeySet, first_of_each, valid_words


class RepeatTracker:
    """Remembers the idempotency keys a run has kept, across chunks and files, 16 bytes a key.

    ``repeats: first`` keeps a key's first row. ``repeats: last`` needs to know the future, so the
    run first feeds every chunk's keys to :meth:`prime` (a cheap pre-pass) and then keeps the row
    whose ordinal (position in the run) is the last one seen for its key.
    """

    def __init__(self, keep: str = "first") -> None:
        self.keep = keep
        self._keys = KeySet()

    @property
    def nbytes(self) -> int:
        """Memory held for the keys seen so far."""
        return self._keys.nbytes

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
        words, rows = valid_words(keys)
        if self.keep == "last":
            kept = self._keys.values_at(self._keys.find(words))
            repeat[rows] = kept != np.asarray(ordinals, np.int64)[rows]
            return pa.array(repeat)
        order, first = first_of_each(words)
        distinct = words[order[first]]
        index = self._keys.find(distinct)
        seen = np.ones(len(order), np.bool_)  # a later row of a key in this chunk repeats
        seen[first] = index >= 0
        repeat[rows[order]] = seen
        self._keys.add(distinct[index < 0])
        return pa.array(repeat)
