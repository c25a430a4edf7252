"""Idempotency keys (DESIGN §7): hex BLAKE2b-128 of four parts joined by U+001F, one row or a column."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from transforms.keys.arrow_text import is_large, whole
from transforms.keys.column_hash import hasher_for, in_row_ranges
from transforms.keys.reference import hashlib_hex, hex_digest
from transforms.text import trim_whitespace

SEPARATOR = "\x1f"


def key_of(account: str, user: str, learning_object: str, completed_at: str | None) -> str:
    """The idempotency key of one row (hashlib); the reference the column version must equal."""
    parts = (account, user, learning_object.strip(), completed_at or "")
    return hex_digest(SEPARATOR.join(parts).encode("utf-8"))


def idempotency_keys(
    account: pa.Array, user: pa.Array, learning_object: pa.Array, completed_at: pa.Array
) -> pa.Array:
    """The idempotency key of every row; null where account, user or learning object is null."""
    columns = _as_text([account, user, learning_object, completed_at])
    lengths = {len(column) for column in columns}
    if len(lengths) != 1:
        raise ValueError(f"key columns differ in length: {sorted(lengths)}")
    hash_hex = hasher_for(lengths.pop())
    separator = pa.scalar(SEPARATOR, type=columns[0].type)

    def keys_of(account: pa.Array, user: pa.Array, objects: pa.Array, done: pa.Array) -> pa.Array:
        objects = trim_whitespace(objects)
        joined = pc.binary_join_element_wise(
            account, user, objects, pc.fill_null(done, ""), separator
        )
        return hash_hex(joined)

    return in_row_ranges(keys_of, columns, None if hash_hex is not hashlib_hex else 1)


def _as_text(columns: list[pa.Array | pa.ChunkedArray]) -> list[pa.Array]:
    """Whole arrays of one text type: large_string if any column is large, else string."""
    arrays = [whole(column) for column in columns]
    large = any(is_large(array.type) for array in arrays)
    text = pa.large_string() if large else pa.string()
    return [array if array.type == text else array.cast(text) for array in arrays]
