"""Row problems as columns: for one field, an error code and a message per row (null if fine)."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc


@dataclass(frozen=True)
class Problem:
    """The problems of one field in every row; field ``_row`` is a malformed source record."""

    field: str
    codes: pa.Array
    messages: pa.Array


def required(values: pa.Array, field: str, code: str, message: str) -> Problem:
    """``code`` and ``message`` where ``values`` is null (blank), else no problem."""
    missing = pc.is_null(values)
    return Problem(field, where(missing, code), where(missing, message))


def where(mask: pa.Array, code: str) -> pa.Array:
    """``code`` where ``mask`` is true, else null."""
    return pc.if_else(mask, pa.scalar(code, pa.string()), pa.scalar(None, pa.string()))


def quoted_message(mask: pa.Array, values: pa.Array, text: str) -> pa.Array:
    """``'value' text`` where ``mask`` is true, else null."""
    quoted = pc.binary_join_element_wise("'", values, f"' {text}", "")
    return pc.if_else(mask, quoted, pa.scalar(None, pa.string()))


def null_where(mask: pa.Array, values: pa.Array) -> pa.Array:
    """``values`` with nulls where ``mask`` is true."""
    return pc.if_else(mask, pa.scalar(None, values.type), values)
