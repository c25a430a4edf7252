"""Counting over boolean Arrow masks."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc


def count_true(mask: pa.Array | pa.ChunkedArray) -> int:
    """How many entries of a boolean mask are true (nulls count as false)."""
    return int(pc.sum(pc.cast(mask, pa.int64())).as_py() or 0)
