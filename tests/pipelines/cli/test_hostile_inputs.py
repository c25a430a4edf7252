"""Hostile but realistic exports (issue 8): each is a row error or one clear line, never a crash."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner, Result

from pipelines.cli.app import app

ACCOUNT = "acct-hostile"
OUTCOMES = ("delivered", "would_send", "duplicate", "skipped", "invalid", "failed", "pending")
ENV: dict[str, str | None] = {
    "STACKONE_ACCOUNT_ID": ACCOUNT,
    "PREFECT_API_URL": None,
    "STACKONE_BASE_URL": None,
}
US_FORMAT = "%m/%d/%Y %I:%M %p"
CSV_MAPPING = f"""\
version: 1
user: {{column: user_id}}
fields:
  learning_object_external_reference: {{column: course}}
  completed_at: {{column: done, format: "{US_FORMAT}"}}
"""


def invoke(*args: str) -> Result:
    """Run ``lms-sync ARGS`` in-process with a controlled environment."""
    return CliRunner().invoke(app, list(args), env=ENV)


def dry_run(tmp_path: Path, source: Path, mapping: str) -> tuple[Result, Path]:
    """A dry run of ``source`` with the mapping text given, into a fresh run folder."""
    mapping_path = tmp_path / "mapping.yaml"
    mapping_path.write_text(mapping, encoding="utf-8")
    folder = tmp_path / "run"
    result = invoke("run", str(source), "-m", str(mapping_path), "--dry-run", "--out", str(folder))
    return result, folder


def balanced_report(folder: Path, rows: int) -> dict[str, Any]:
    """report.json, after checking that its outcomes add up to the rows the file holds."""
    report: dict[str, Any] = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    assert report["rows_read"] == rows
    assert set(report["outcomes"]) == set(OUTCOMES)
    assert sum(report["outcomes"].values()) == rows
    return report


def payload_rows(folder: Path) -> dict[int, dict[str, Any]]:
    """payloads.jsonl by source row."""
    lines = (folder / "payloads.jsonl").read_text(encoding="utf-8").splitlines()
    return {item["source_row"]: item for item in map(json.loads, lines)}


def deadletter_csv(folder: Path) -> tuple[list[str], list[dict[str, str]]]:
    """deadletter.csv's header and rows."""
    with (folder / "deadletter.csv").open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def one_error_line(result: Result) -> str:
    """The single non-blank line the CLI wrote to stderr."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return " ".join(lines[0].split())


# --- a blank completed_at in the last row -------------------------------------------------------


@pytest.mark.parametrize("blank", ["", "N/A", "   "])
def test_blank_date_in_the_last_row_of_a_fixed_width_column(tmp_path: Path, blank: str) -> None:
    """The last row's blank date is omitted (the row is sent without it); every row has an outcome."""
    source = tmp_path / "transcript.csv"
    source.write_text(
        "user_id,course,done\n"
        "u1,C-1,03/05/2024 02:22 PM\n"
        "u2,C-2,11/30/2024 09:05 AM\n"
        f"u3,C-3,{blank}\n",
        encoding="utf-8",
    )
    result, folder = dry_run(tmp_path, source, CSV_MAPPING)
    assert result.exit_code == 0, result.output
    report = balanced_report(folder, 3)
    assert report["outcomes"]["would_send"] == 3
    sent = payload_rows(folder)
    assert sent[1]["body"]["completed_at"] == "2024-03-05T14:22:00.000Z"
    assert sent[3]["body"] == {"learning_object_external_reference": "C-3"}


# --- mapping errors found from the Parquet schema ------------------------------------------------


def nested_export(tmp_path: Path) -> Path:
    """A Parquet export with a struct and a list column beside ordinary ones."""
    path = tmp_path / "nested.parquet"
    table = pa.table(
        {
            "user_id": ["u1", "u2"],
            "course": ["C-1", "C-2"],
            "done": ["2024-03-05T14:22:00Z", "2024-03-06T10:00:00Z"],
            "meta": pa.array([{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]),
            "tags": pa.array([["x", "y"], []], pa.list_(pa.string())),
            "epoch": pa.array([1709648530, 1709648531], pa.int64()),
            "ratio": pa.array([0.5, 0.25], pa.float64()),
        }
    )
    pq.write_table(table, path)
    return path


def mapping_with(**fields: str) -> str:
    """A Parquet mapping whose ``fields`` entries are replaced or added (YAML flow text)."""
    entries = {
        "learning_object_external_reference": "{column: course}",
        "completed_at": "{column: done}",
        **fields,
    }
    lines = "".join(f"  {name}: {value}\n" for name, value in entries.items())
    return f"version: 1\nuser: {{column: user_id}}\nfields:\n{lines}"


@pytest.mark.parametrize(
    ("field", "entry", "key", "column", "kind"),
    [
        ("passthrough", "{columns: [meta]}", "fields.passthrough.columns[0]", "meta", "struct<"),
        ("learning_object_id", "{column: tags}", "", "tags", "list<"),
        ("result", "{column: meta}", "fields.result.column", "meta", "struct<"),
        ("score", "{column: tags}", "fields.score.column", "tags", "list<"),
        ("learning_object_external_reference", "{column: meta}", "", "meta", "struct<"),
    ],
)
def test_nested_column_mapped_to_a_field_is_a_mapping_error(
    tmp_path: Path, field: str, entry: str, key: str, column: str, kind: str
) -> None:
    """A struct or list column mapped to a field: exit 2 naming the column and its type, no run."""
    source = nested_export(tmp_path)
    key = key or f"fields.{field}.column"
    result, folder = dry_run(tmp_path, source, mapping_with(**{field: entry}))
    assert result.exit_code == 2, result.output
    line = one_error_line(result)
    assert key in line and repr(column) in line and kind in line and "nested.parquet" in line
    assert not folder.exists()
    checked = invoke("check-mapping", str(tmp_path / "mapping.yaml"), str(source))
    assert checked.exit_code == 2
    assert one_error_line(checked) == line


def test_nested_user_column_is_a_mapping_error(tmp_path: Path) -> None:
    """The user column itself may not be nested either."""
    source = nested_export(tmp_path)
    mapping = mapping_with().replace("user: {column: user_id}", "user: {column: meta}")
    result, _ = dry_run(tmp_path, source, mapping)
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "user.column" in line and "'meta'" in line and "struct<" in line


@pytest.mark.parametrize(("column", "kind"), [("epoch", "int64"), ("ratio", "double")])
def test_numeric_completed_at_without_an_epoch_format_is_a_mapping_error(
    tmp_path: Path, column: str, kind: str
) -> None:
    """An integer/float completed_at without format: exit 2 naming the column, type and formats."""
    source = nested_export(tmp_path)
    mapping = mapping_with(completed_at=f"{{column: {column}}}")
    result, folder = dry_run(tmp_path, source, mapping)
    assert result.exit_code == 2, result.output
    line = one_error_line(result)
    assert "fields.completed_at.format" in line and repr(column) in line and kind in line
    assert "epoch_s" in line and "epoch_ms" in line
    assert not folder.exists()
    checked = invoke("check-mapping", str(tmp_path / "mapping.yaml"), str(source))
    assert checked.exit_code == 2 and "fields.completed_at.format" in checked.stderr
    strptime = mapping_with(completed_at=f'{{column: {column}, format: "%Y%m%d"}}')
    result, _ = dry_run(tmp_path, source, strptime)
    assert result.exit_code == 2 and "fields.completed_at.format" in result.stderr


def test_numeric_completed_at_with_an_epoch_format_runs(tmp_path: Path) -> None:
    """The same integer column with ``format: epoch_s`` is read as it always was."""
    source = nested_export(tmp_path)
    mapping = mapping_with(completed_at="{column: epoch, format: epoch_s}")
    result, folder = dry_run(tmp_path, source, mapping)
    assert result.exit_code == 0, result.output
    assert payload_rows(folder)[1]["body"]["completed_at"] == "2024-03-05T14:22:10.000Z"


def test_unmapped_nested_columns_reach_the_deadletter_files(tmp_path: Path) -> None:
    """Invalid rows of an export with nested columns: CSV gets JSON text, Parquet keeps the types."""
    source = tmp_path / "bad.parquet"
    pq.write_table(
        pa.table(
            {
                "=cmd": ["u1", None],
                "course": ["C-1", "C-2"],
                "done": ["2024-03-05T14:22:00Z", "not a date"],
                "meta": pa.array([{"a": 1, "b": "=x"}, None]),
                "tags": pa.array([["x", "y"], []], pa.list_(pa.string())),
            }
        ),
        source,
    )
    mapping = mapping_with().replace("user: {column: user_id}", "user: {column: '=cmd'}")
    result, folder = dry_run(tmp_path, source, mapping)
    assert result.exit_code == 1, result.output
    report = balanced_report(folder, 2)
    assert report["outcomes"]["invalid"] == 1 and report["outcomes"]["would_send"] == 1
    header, rows = deadletter_csv(folder)
    assert header[:5] == ["'=cmd", "course", "done", "meta", "tags"]
    assert [(row["meta"], row["tags"], row["_dl_error_code"]) for row in rows] == [
        ("", "[]", "invalid_user")
    ]
    parquet = pq.read_table(folder / "deadletter.parquet")
    assert pa.types.is_struct(parquet.schema.field("meta").type)
    assert parquet.column("tags").to_pylist() == [[]]
    assert parquet.schema.names[0] == "=cmd"


def test_nested_values_in_the_csv_are_json(tmp_path: Path) -> None:
    """A struct value in the dead-letter CSV is its JSON text (neutralised when it starts risky)."""
    source = tmp_path / "bad.parquet"
    pq.write_table(
        pa.table(
            {
                "user_id": [None],
                "course": ["C-1"],
                "done": ["2024-03-05T14:22:00Z"],
                "meta": pa.array([{"a": 1, "b": "=x"}]),
                "tags": pa.array([["x", None]], pa.list_(pa.string())),
            }
        ),
        source,
    )
    result, folder = dry_run(tmp_path, source, mapping_with())
    assert result.exit_code == 1, result.output
    _, rows = deadletter_csv(folder)
    assert json.loads(rows[0]["meta"]) == {"a": 1, "b": "=x"}
    assert json.loads(rows[0]["tags"]) == ["x", None]


# --- float ids ----------------------------------------------------------------------------------


def test_float_user_ids_leave_as_integers_and_nan_is_invalid(tmp_path: Path) -> None:
    """12345.0 is user "12345" (also past 1e11); NaN and inf are invalid_user, never "nan"."""
    source = tmp_path / "floats.parquet"
    users = [12345.0, 123456789012.0, float("nan"), float("inf"), 7.5, -float("inf")]
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array(users, pa.float64()),
                "course": [f"C-{i}" for i in range(len(users))],
                "done": ["2024-03-05T14:22:00Z"] * len(users),
            }
        ),
        source,
    )
    result, folder = dry_run(tmp_path, source, mapping_with())
    assert result.exit_code == 1, result.output
    report = balanced_report(folder, len(users))
    assert report["reasons"] == {"invalid_user": 3}
    sent = payload_rows(folder)
    assert {row: item["user_id"] for row, item in sent.items()} == {
        1: "12345",
        2: "123456789012",
        5: "7.5",
    }
    _, rows = deadletter_csv(folder)
    assert [row["_dl_error_code"] for row in rows] == ["invalid_user"] * 3
    messages = [row["_dl_error_message"] for row in rows]
    assert all("nan" not in message or "NaN" in message for message in messages)


def test_float_account_and_learning_object_ids(tmp_path: Path) -> None:
    """Float account and learning-object columns leave as integer text; NaN is not an id."""
    source = tmp_path / "floats.parquet"
    pq.write_table(
        pa.table(
            {
                "user_id": ["u1", "u2", "u3"],
                "tenant": pa.array([42.0, float("nan"), 42.0]),
                "course": pa.array([1001.0, 1002.0, float("nan")]),
                "lo": pa.array([9.0, 9.0, 9.0]),
                "done": ["2024-03-05T14:22:00Z"] * 3,
            }
        ),
        source,
    )
    mapping = mapping_with(learning_object_id="{column: lo}").replace(
        "user:", "account: {column: tenant}\nuser:"
    )
    result, folder = dry_run(tmp_path, source, mapping)
    assert result.exit_code == 1, result.output
    report = balanced_report(folder, 3)
    assert report["reasons"] == {"invalid_account": 1, "missing_required": 1}
    sent = payload_rows(folder)
    assert sent[1]["account_id"] == "42"
    assert sent[1]["body"]["learning_object_external_reference"] == "1001"
    assert sent[1]["body"]["learning_object_id"] == "9"


# --- bytes columns -------------------------------------------------------------------------------


def test_bytes_columns_that_are_not_utf8_are_malformed_rows(tmp_path: Path) -> None:
    """Mapped Parquet binary columns read as text; a value that is not UTF-8 makes its row a
    malformed_row (stage read) instead of crashing the run; the other rows are sent as usual."""
    source = tmp_path / "bytes.parquet"
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array([b"u1", b"u\xff", b"u3", b"u4"], pa.binary()),
                "course": pa.array([b"C-1", b"C-2", b"C-3", b"C-4"], pa.large_binary()),
                "done": ["2024-03-05T14:22:00Z"] * 4,
                "status": pa.array([b"ok", b"ok", b"\xe9chou\xe9", b"ok"]).dictionary_encode(),
                "blob": pa.array([b"\x00\xfe", None, None, b"\xfa"], pa.binary()),
            }
        ),
        source,
    )
    mapping = mapping_with(result="{column: status, map: {ok: Pass}}")
    result, folder = dry_run(tmp_path, source, mapping)
    assert result.exit_code == 1, result.output
    report = balanced_report(folder, 4)
    assert report["outcomes"]["would_send"] == 2 and report["outcomes"]["invalid"] == 2
    assert report["reasons"] == {"malformed_row": 2}
    sent = payload_rows(folder)
    assert (
        sent[1]["user_id"] == "u1"
        and sent[4]["body"]["learning_object_external_reference"] == "C-4"
    )
    assert sent[4]["body"]["result"] == {"value": "Pass", "source_value": "ok"}
    _, rows = deadletter_csv(folder)
    assert [(r["_dl_source_row"], r["_dl_stage"], r["_dl_error_message"]) for r in rows] == [
        ("2", "read", "column 'user_id' holds bytes that are not UTF-8 text"),
        ("3", "read", "column 'status' holds bytes that are not UTF-8 text"),
    ]
    kept = pq.read_table(folder / "deadletter.parquet")
    assert kept.column("user_id").to_pylist() == [b"u\xff", b"u3"]  # the original bytes


def test_view_columns_read_as_plain_text_and_bytes(tmp_path: Path) -> None:
    """string_view/binary_view columns (kept in the schema by Arrow >= 16 writers) run like
    string/binary ones: invalid rows reach both dead-letter files, counts add up."""
    source = tmp_path / "views.parquet"
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array(["u1", "u2", "u3"], pa.string_view()),
                "course": pa.array(["C-1", "C-2", "C-3"], pa.string_view()),
                "done": pa.array(["2024-03-05T14:22:00Z", "not a date", None], pa.string_view()),
                "blob": pa.array([b"a", b"\xfe", None], pa.binary_view()),
            }
        ),
        source,
    )
    result, folder = dry_run(tmp_path, source, mapping_with())
    assert result.exit_code == 1, result.output
    report = balanced_report(folder, 3)
    assert report["outcomes"]["would_send"] == 2 and report["reasons"] == {"invalid_timestamp": 1}
    _, rows = deadletter_csv(folder)
    assert [(r["user_id"], r["done"], r["_dl_source_row"]) for r in rows] == [
        ("u2", "not a date", "2")
    ]
    kept = pq.read_table(folder / "deadletter.parquet")
    assert kept.schema.field("done").type == pa.string()
    assert kept.column("blob").to_pylist() == [b"\xfe"]


# --- the mapping file itself ----------------------------------------------------------------------


def test_mapping_file_not_utf8_names_the_file_and_byte(tmp_path: Path) -> None:
    """A cp1252 mapping file: exit 2 naming the file and the offset of the first bad byte."""
    mapping = tmp_path / "latin.yaml"
    text = CSV_MAPPING.replace("course}", "course}  # Kursübersicht")
    mapping.write_bytes(text.encode("cp1252"))
    offset = text.encode("cp1252").index("ü".encode("cp1252"))
    source = tmp_path / "x.csv"
    source.write_text("user_id,course,done\nu1,C-1,\n", encoding="utf-8")
    for args in (
        ("run", str(source), "-m", str(mapping), "--dry-run", "--out", str(tmp_path / "run")),
        ("check-mapping", str(mapping)),
    ):
        result = invoke(*args)
        assert result.exit_code == 2, result.output
        line = one_error_line(result)
        assert "latin.yaml" in line and "UTF-8" in line and f"byte {offset}" in line
    assert not (tmp_path / "run").exists()
