"""Bytes (Parquet binary) columns the mapping reads, as text: a value that is not UTF-8 is a
malformed record, not a crash of the whole chunk."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from transforms.mapping import MappingSpec
from transforms.validation.problems import where
from transforms.validation.source_columns import whole_column


def decoded_columns(table: pa.Table, spec: MappingSpec) -> tuple[pa.Table, pa.Array | None]:
    """``table`` with every mapped bytes column as UTF-8 text, and per row why a value could
    not be decoded (null if fine; None when no mapped column holds undecodable bytes)."""
    messages = []
    for name in dict.fromkeys(column for _, column in spec.columns()):
        values = whole_column(table, name)
        if pa.types.is_dictionary(values.type):
            if not _is_bytes(values.type.value_type):
                continue
            values = values.dictionary_decode()
        if not _is_bytes(values.type):
            continue
        text, undecodable = _as_utf8(values)
        table = table.set_column(table.schema.get_field_index(name), name, text)
        if undecodable is not None:
            message = f"column {name!r} holds bytes that are not UTF-8 text"
            messages.append(where(undecodable, message))
    return table, (pc.coalesce(*messages) if messages else None)


def _is_bytes(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_fixed_size_binary(kind)
        or pa.types.is_binary_view(kind)
    )


def _as_utf8(values: pa.Array) -> tuple[pa.Array, pa.Array | None]:
    """The column as text, and where it held bytes that are not UTF-8 (those values null).

    Arrow casts the whole column at once; only when that fails is each distinct value decoded.
    """
    try:
        return values.cast(pa.string()), None
    except pa.ArrowInvalid:
        pass
    encoded = pc.dictionary_encode(values)
    decoded = [_decode(value) for value in encoded.dictionary.to_pylist()]
    text = pc.take(pa.array(decoded, pa.string()), encoded.indices)
    undecodable = pc.and_(pc.is_null(text), pc.is_valid(values))
    return text, undecodable


def _decode(value: bytes) -> str | None:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None
