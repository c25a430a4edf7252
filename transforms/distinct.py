"""Run a per-value parser once per distinct value of a column, then spread the results back."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from transforms.converted import Converted


def convert_distinct(
    values: pa.Array,
    parse: Callable[[str], object],
    value_type: pa.DataType,
    code: str,
) -> Converted:
    """Apply ``parse`` (raising ValueError with a message) to each distinct non-null text value."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    encoded = pc.dictionary_encode(values)
    out_values: list[object] = []
    out_codes: list[str | None] = []
    out_messages: list[str | None] = []
    for text in encoded.dictionary.to_pylist():
        try:
            out_values.append(parse(text))
            out_codes.append(None)
            out_messages.append(None)
        except ValueError as exc:
            out_values.append(None)
            out_codes.append(code)
            out_messages.append(str(exc))
    indices = encoded.indices
    return Converted(
        pc.take(pa.array(out_values, type=value_type), indices),
        pc.take(pa.array(out_codes, type=pa.string()), indices),
        pc.take(pa.array(out_messages, type=pa.string()), indices),
    )
