"""The mapping's row filters: which rows a run leaves out (skipped, not invalid)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from transforms.extraction import take_part
from transforms.mapping import MappingSpec
from transforms.text import match_key, match_key_of
from transforms.validation.source_columns import text_column


def filtered_out(table: pa.Table, spec: MappingSpec, n: int) -> pa.Array:
    """Rows some filter leaves out (a blank value is outside every list)."""
    out = pa.repeat(False, n)
    for rule in spec.filters:
        allowed = pa.array(sorted({match_key_of(v) for v in rule.in_}), pa.string())
        keys = match_key(take_part(text_column(table, rule.column), rule.prefix, rule.extract))
        inside = pc.fill_null(pc.is_in(keys, value_set=allowed), False)
        out = pc.or_(out, pc.invert(inside))
    return out
