"""``result`` converter: source statuses → Pass / Fail / unmapped_value (DESIGN §5)."""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc

from transforms.text import match_key, match_key_of

UNMAPPED = "unmapped_value"


def map_results(values: pa.Array, mapping: Mapping[str, str]) -> pa.Array:
    """Map each non-null status case- and space-insensitively; unknown statuses → unmapped_value."""
    keys = list({match_key_of(k): v for k, v in mapping.items()}.items())
    text = pc.cast(values, pa.string())
    positions = pc.index_in(match_key(text), value_set=pa.array([k for k, _ in keys], pa.string()))
    mapped = pc.take(pa.array([v for _, v in keys], pa.string()), positions)
    unmapped = pc.and_(pc.is_valid(text), pc.is_null(positions))
    return pc.if_else(unmapped, pa.scalar(UNMAPPED), mapped)
