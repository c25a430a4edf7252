"""Dead-letter files with hostile columns (issue 8): nested values and risky column names."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.output.deadletter import DeadLetterWriter, as_text, union_schema

NESTED = pa.schema(
    [
        ("=cmd", pa.string()),
        ("meta", pa.struct([("a", pa.int64()), ("b", pa.string())])),
        ("tags", pa.list_(pa.string())),
        ("attrs", pa.map_(pa.string(), pa.int64())),
    ]
)


def test_as_text_writes_nested_values_as_json() -> None:
    """Structs, lists and maps become JSON text; nulls stay null; scalars cast as before."""
    meta = pa.array([{"a": 1, "b": "x"}, None], NESTED.field("meta").type)
    assert [None if v is None else json.loads(v) for v in as_text(meta).to_pylist()] == [
        {"a": 1, "b": "x"},
        None,
    ]
    assert as_text(pa.array([["x", None], []], pa.list_(pa.string()))).to_pylist() == [
        '["x",null]',
        "[]",
    ]
    assert as_text(pa.array([1, None])).to_pylist() == ["1", None]
    assert as_text(pa.array([b"\xff"], pa.binary())).to_pylist() == ["b'\\xff'"]


def test_writer_keeps_parquet_typed_and_csv_as_json_with_neutral_header(tmp_path: Path) -> None:
    """Nested columns never crash the writer; the CSV header cell =cmd is written '=cmd."""
    writer = DeadLetterWriter(tmp_path, union_schema([NESTED]))
    rows = pa.table(
        {
            "=cmd": ["=1+1"],
            "meta": pa.array([{"a": 1, "b": "=x"}], NESTED.field("meta").type),
            "tags": pa.array([["t"]], pa.list_(pa.string())),
            "attrs": pa.array([[("k", 2)]], NESTED.field("attrs").type),
            "_dl_error_code": ["invalid_user"],
            "_dl_source_row": [1],
        }
    )
    writer.write(rows)
    writer.close()
    parquet = pq.read_table(tmp_path / "deadletter.parquet")
    assert parquet.schema.field("meta").type == NESTED.field("meta").type
    assert parquet.column("=cmd").to_pylist() == ["=1+1"]
    with (tmp_path / "deadletter.csv").open(encoding="utf-8", newline="") as handle:
        header, row = list(csv.reader(handle))
    assert header[:4] == ["'=cmd", "meta", "tags", "attrs"]
    assert row[0] == "'=1+1"
    assert json.loads(row[1]) == {"a": 1, "b": "=x"}
    assert json.loads(row[2]) == ["t"]
    assert json.loads(row[3]) == [["k", 2]]


def test_nested_column_widened_to_text_by_two_sources(tmp_path: Path) -> None:
    """A column that is a struct in one source and text in another is JSON text in both files."""
    struct = pa.schema([("meta", NESTED.field("meta").type)])
    schema = union_schema([struct, pa.schema([("meta", pa.string())])])
    writer = DeadLetterWriter(tmp_path, schema)
    writer.write(pa.table({"meta": pa.array([{"a": 1, "b": "x"}], struct.field("meta").type)}))
    writer.close()
    assert json.loads(pq.read_table(tmp_path / "deadletter.parquet")["meta"][0].as_py()) == {
        "a": 1,
        "b": "x",
    }
