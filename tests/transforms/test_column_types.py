"""Typed (Parquet) columns a mapped field cannot read are mapping errors (issue 8)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from transforms.errors import MappingError
from transforms.mapping import MappingSpec, check_columns, parse_mapping

MAPPING = """
version: 1
user: {column: uid}
fields:
  learning_object_external_reference: {column: course}
  completed_at: {column: done%s}
  passthrough: {columns: [extra]}
"""
HEADER = ["uid", "course", "done", "extra"]
TEXT = dict.fromkeys(HEADER, pa.string())
LO_REF = "learning_object_external_reference"


def spec(fmt: str = "") -> MappingSpec:
    """The test mapping, with ``, format: …`` on completed_at when given."""
    return parse_mapping(MAPPING % (f", format: {fmt}" if fmt else ""), {})


def error(types: dict[str, pa.DataType], fmt: str = "") -> MappingError:
    """The MappingError check_columns raises for these column types."""
    with pytest.raises(MappingError) as caught:
        check_columns(spec(fmt), HEADER, "export.parquet", {**TEXT, **types})
    return caught.value


def test_text_and_typed_columns_that_fields_read_pass() -> None:
    """Strings, integer ids, timestamps and epoch numbers with their format are fine."""
    check_columns(spec(), HEADER, "export.parquet", TEXT)
    check_columns(spec(), HEADER, "export.parquet", {**TEXT, "uid": pa.int64()})
    check_columns(spec(), HEADER, "export.parquet", {**TEXT, "done": pa.timestamp("us")})
    for fmt in ("epoch_s", "epoch_ms", "excel_serial"):
        check_columns(spec(fmt), HEADER, "export.parquet", {**TEXT, "done": pa.float64()})
    check_columns(spec(), HEADER, "export.parquet")  # no types: names only, as before


@pytest.mark.parametrize(
    ("column", "kind", "key"),
    [
        ("extra", pa.struct([("a", pa.int64())]), "fields.passthrough.columns[0]"),
        ("uid", pa.list_(pa.string()), "user.column"),
        ("course", pa.map_(pa.string(), pa.int64()), f"fields.{LO_REF}.column"),
        ("done", pa.large_list(pa.int64()), "fields.completed_at.column"),
        ("extra", pa.dictionary(pa.int32(), pa.list_(pa.int8())), "fields.passthrough.columns[0]"),
    ],
)
def test_nested_column_names_key_column_type_and_fix(
    column: str, kind: pa.DataType, key: str
) -> None:
    """A struct, list or map column is refused with its key, name, file, type and what to do."""
    caught = error({column: kind})
    assert caught.key == key
    message = str(caught)
    assert repr(column) in message and "export.parquet" in message and "nested" in message
    assert "flatten" in message


@pytest.mark.parametrize("kind", [pa.int64(), pa.int32(), pa.float64(), pa.decimal128(12, 3)])
@pytest.mark.parametrize("fmt", ["", '"%Y%m%d"'])
def test_numeric_completed_at_needs_an_epoch_format(kind: pa.DataType, fmt: str) -> None:
    """Numbers in completed_at without epoch_s / epoch_ms / excel_serial name the format key."""
    caught = error({"done": kind}, fmt)
    assert caught.key == "fields.completed_at.format"
    message = str(caught)
    assert "'done'" in message and str(kind) in message
    assert "format: epoch_s or epoch_ms" in message and "excel_serial" in message
