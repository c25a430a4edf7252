"""The mapping's row filters: which rows a run leaves out (skipped, not invalid)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from transforms.mapping import MappingSpec
from transforms.text import match_key, match_key_of
from transforms.validation.source_columns import distinct_text


def filtered_out(table: pa.Table, spec: MappingSpec, n: int) -> pa.Array:
    """Rows some filter leaves out (a blank value is outside every list); each distinct value
    is matched once."""
    out = pa.repeat(False, n)
    for rule in spec.filters:
        allowed = pa.array(sorted({match_key_of(v) for v in rule.in_}), pa.string())
        distinct, indices = distinct_text(table, rule.column, rule)
        inside = pc.is_in(match_key(distinct), value_set=allowed)
        out = pc.or_(out, pc.invert(pc.fill_null(pc.take(inside, indices), False)))
    return out
