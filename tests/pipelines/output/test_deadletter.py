"""Dead-letter files: union of source columns, _dl_* columns, formulas neutralised, owner-only."""

from __future__ import annotations

import stat
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipelines.output.deadletter import DeadLetterWriter, neutralise_formulas, union_schema


def test_neutralise_formulas_prefixes_risky_text() -> None:
    """Values a spreadsheet would evaluate get a leading quote; others are untouched."""
    values = pa.array(["=SUM(A1)", "+1", "-2", "@x", "\tx", "\rx", "plain", "a=b", None])
    assert neutralise_formulas(values).to_pylist() == [
        "'=SUM(A1)",
        "'+1",
        "'-2",
        "'@x",
        "'\tx",
        "'\rx",
        "plain",
        "a=b",
        None,
    ]


def test_union_schema_keeps_order_and_widens_conflicts() -> None:
    """Columns appear once in first-seen order; a column typed differently by two sources is text."""
    schema = union_schema(
        [
            pa.schema([("a", pa.string()), ("n", pa.int64())]),
            pa.schema([("n", pa.float64()), ("b", pa.string())]),
        ]
    )
    assert schema.names[:3] == ["a", "n", "b"]
    assert schema.field("n").type == pa.string()
    assert schema.names[3] == "_dl_stage" and schema.names[-1] == "_dl_source_row"


def test_writer_streams_both_files(tmp_path: Path) -> None:
    """Rows from two sources land in both files; CSV neutralised, Parquet exact, both 0600."""
    schema = union_schema([pa.schema([("a", pa.string())]), pa.schema([("b", pa.string())])])
    writer = DeadLetterWriter(tmp_path, schema)
    writer.write(
        pa.table({"a": ["=1+1"], "_dl_error_code": ["invalid_score"], "_dl_source_row": [3]})
    )
    writer.write(pa.table({"b": ["x"], "_dl_error_code": ["malformed_row"], "_dl_source_row": [9]}))
    writer.close()
    parquet = pq.read_table(tmp_path / "deadletter.parquet")
    assert parquet.column("a").to_pylist() == ["=1+1", None]
    assert parquet.column("_dl_source_row").to_pylist() == [3, 9]
    csv = pacsv.read_csv(
        tmp_path / "deadletter.csv",
        convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(schema.names, pa.string())),
    )
    assert csv.column("a").to_pylist() == ["'=1+1", ""]
    assert csv.column("_dl_error_code").to_pylist() == ["invalid_score", "malformed_row"]
    for name in ("deadletter.csv", "deadletter.parquet"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600


def test_empty_run_leaves_valid_files(tmp_path: Path) -> None:
    """A run with nothing dead-lettered still writes both files with the header only."""
    writer = DeadLetterWriter(tmp_path, union_schema([pa.schema([("a", pa.string())])]))
    writer.close()
    assert pq.read_table(tmp_path / "deadletter.parquet").num_rows == 0
    assert (tmp_path / "deadletter.csv").read_text().startswith('"a","_dl_stage"')
