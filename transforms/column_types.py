"""Which typed (Parquet) columns a mapped field can read: nested columns and numbers without an
epoch format are mapping errors, found from the schema before any row is read."""

from __future__ import annotations

import pyarrow as pa

from transforms.timestamps import SPECIAL_FORMATS

_COMPLETED_AT = "fields.completed_at.column"


def column_type_problem(
    key: str, column: str, source: str, kind: pa.DataType, timestamp_format: str | None
) -> tuple[str, str] | None:
    """(mapping key, what is wrong and what to write) when the field at ``key`` cannot read
    ``column`` of ``source``, typed ``kind``; None when it can (``timestamp_format``: completed_at's)."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_nested(kind):
        return key, (
            f"column {column!r} in {source} is a nested {kind} column, which cannot be read as text: map a "
            f"column of text or numbers (flatten the nested values into columns of their own)"
        )
    numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
    if key == _COMPLETED_AT and numeric and timestamp_format not in SPECIAL_FORMATS:
        return "fields.completed_at.format", (
            f"column {column!r} in {source} holds numbers ({kind}): write format: epoch_s or epoch_ms "
            f"(seconds or milliseconds since 1970-01-01 UTC) or excel_serial (Excel day numbers)"
        )
    return None
