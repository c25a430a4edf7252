"""Milliseconds since 1970 as numpy int64 plus a validity mask: what every parser returns.

Fractions beyond milliseconds round half-up (towards the later instant), so ``.0005`` → ``.001``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

Ints = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MS_PER_DAY = 86_400_000
MIN_MS = -62_135_596_800_000  # 0001-01-01T00:00:00.000Z
MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_UNIT_PER_MS = {"ms": 1, "us": 1_000, "ns": 1_000_000}


def np_mask(values: pa.Array) -> Mask:
    """A boolean Arrow array (no nulls) as a writable numpy mask."""
    return np.array(values.to_numpy(zero_copy_only=False), dtype=np.bool_)


def ints(values: pa.Array) -> tuple[Ints, Mask]:
    """An int64 Arrow array as (numpy values with nulls as 0, validity mask)."""
    ok = np_mask(values.is_valid())
    return np.array(pc.fill_null(values, 0).to_numpy(zero_copy_only=False), np.int64), ok


def round_ms(values: pa.Array) -> tuple[Ints, Mask]:
    """Timestamps of any unit → int64 ms since 1970, rounded half-up (floor of t + 0.5 ms)."""
    raw, ok = ints(values.cast(pa.int64()))
    unit = values.type.unit
    if unit == "s":
        bound = (MAX_MS + 2 * MS_PER_DAY) // 1_000
        return np.clip(raw, -bound, bound) * 1_000, ok
    per_ms = _UNIT_PER_MS[unit]
    half = per_ms // 2
    return (np.minimum(raw, np.iinfo(np.int64).max - half) + half) // per_ms, ok
