"""Rows repeated inside one run collapse to one: the others are duplicate_in_file (DESIGN §5)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


class RepeatTracker:
    """Remembers the idempotency keys a run has kept, across chunks and files.

    ``repeats: first`` keeps a key's first row. ``repeats: last`` needs to know the future, so the
    run first feeds every chunk's keys to :meth:`prime` (a cheap pre-pass) and then keeps the row
    whose ordinal (position in the run) is the last one seen for its key.
    """

    def __init__(self, keep: str = "first") -> None:
        self.keep = keep
        self._seen: set[str] = set()
        self._last: dict[str, int] = {}

    def prime(self, keys: pa.Array, ordinals: pa.Array) -> None:
        """Pre-pass for ``last``: remember the latest ordinal of each key."""
        valid = pc.is_valid(keys)
        for key, ordinal in zip(
            pc.filter(keys, valid).to_pylist(), pc.filter(ordinals, valid).to_pylist(), strict=True
        ):
            self._last[key] = ordinal

    def repeats(self, keys: pa.Array, ordinals: pa.Array) -> pa.Array:
        """Boolean per row: true where the row's key is kept from another row (nulls: false)."""
        if self.keep == "last":
            kept = pa.array(
                [self._last.get(k, -1) if k is not None else -1 for k in keys.to_pylist()]
            )
            return pc.and_(pc.is_valid(keys), pc.not_equal(kept, ordinals))
        positions = pa.array(np.arange(len(keys), dtype=np.int64))
        table = pa.table({"key": keys, "pos": positions}).filter(pc.is_valid(keys))
        first = table.group_by("key", use_threads=False).aggregate([("pos", "min")])
        first_keys = first.column("key").combine_chunks()
        fresh = set(first_keys.to_pylist()) - self._seen  # set algebra runs in C
        self._seen |= fresh
        is_fresh = pc.is_in(first_keys, value_set=pa.array(list(fresh), pa.string()))
        fresh_positions = pc.filter(first.column("pos_min").combine_chunks(), is_fresh)
        kept = pc.is_in(positions, value_set=fresh_positions)
        return pc.and_(pc.is_valid(keys), pc.invert(kept))
