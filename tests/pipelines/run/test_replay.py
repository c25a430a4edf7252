"""``lms-sync replay``: fixed dead-letter rows are re-submitted and keep their original file and row.

A dry run of a shipped sample makes the dead-letter file. A few of its rows are fixed with
pyarrow, the way a data engineer would, and the file is replayed dry and against the sandbox.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner, Result

from pipelines.cli.replay_command import replay_command
from pipelines.core.settings import RunOptions, load_settings
from pipelines.core.state_location import StateLocation
from pipelines.output.deadletter import DL_COLUMNS, union_schema
from pipelines.run.chunks import iter_chunks
from pipelines.run.execute import execute
from pipelines.run.plan import RunPlan, load_mapping, plan_run
from pipelines.run.request import plan_replay
from pipelines.sandbox import RunningSandbox
from pipelines.source.deadletter_source import STILL_MALFORMED
from tests.conftest import SANDBOX_ACCOUNT, SANDBOX_KEY

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = ROOT / "data" / "samples"
MAPPINGS = ROOT / "config" / "mappings"
CORNERSTONE = SAMPLES / "cornerstone_transcript.csv"
CORNERSTONE_MAPPING = MAPPINGS / "cornerstone_transcript.yaml"
ACCOUNT = "acct-5f2c9e71"
ENV: dict[str, str | None] = {
    "STACKONE_ACCOUNT_ID": ACCOUNT,
    "STACKONE_API_KEY": None,
    "STACKONE_BASE_URL": None,
    "PREFECT_API_URL": None,
}
# cornerstone_transcript.csv's dead-lettered rows (data/samples/README.md).
FIRST_CODES = {
    7: "missing_required",
    8: "invalid_timestamp",
    9: "future_timestamp",
    10: "invalid_duration",
    11: "malformed_row",
    13: "invalid_timestamp",
    23: "invalid_user",
    24: "malformed_row",
}
FIXED = (7, 10, 24)
SAMPLE_RUNS = [
    ("cornerstone_transcript.csv", "cornerstone_transcript.yaml"),
    ("workday_learning.csv", "workday_learning.yaml"),
    ("successfactors_learning_history.csv", "successfactors_learning_history.yaml"),
    ("moodle_scorm_tracks.parquet", "moodle_scorm_tracks.yaml"),
]

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
app.command("replay")(replay_command)


@app.callback()
def _group() -> None:
    """Keep ``replay`` a subcommand, as in lms-sync."""


def invoke(*args: str, env: Mapping[str, str | None] | None = None) -> Result:
    """Run the test CLI in-process with a clean environment."""
    return CliRunner().invoke(app, list(args), env={**ENV, **(env or {})})


def first_dry_run(source: Path, mapping: Path, out: Path) -> Path:
    """Dry-run one export; returns its deadletter.parquet."""
    settings = load_settings(account_id=ACCOUNT)
    plan = plan_run([str(source)], load_mapping(mapping, {}), settings.account_id)
    execute(plan, settings, RunOptions(out=out, dry_run=True, state=StateLocation.sqlite(out / "no-ledger")))
    return out / "deadletter.parquet"


def set_cell(table: pa.Table, row: int, column: str, value: Any) -> pa.Table:
    """``table`` with one cell of the row whose ``_dl_source_row`` is ``row`` replaced."""
    at = table.column("_dl_source_row").to_pylist().index(row)
    values = table.column(column).to_pylist()
    values[at] = value
    index = table.column_names.index(column)
    return table.set_column(index, column, pa.array(values, table.schema.field(column).type))


def fix_cornerstone(deadletter: Path) -> None:
    """Fix rows 7 (blank LO), 10 (negative hours) and 24 (cut off; _dl_error_code cleared)."""
    table = pq.read_table(deadletter)
    table = set_cell(table, 7, "LO Object ID", "5e0c3f9a-2b1d-4c6e-9f47-1a2b3c4d5e02")
    table = set_cell(table, 10, "Training Hours", "1.00")
    completed = {
        "Training Title": "Code of Conduct 2024",
        "Training Type": "Online Course",
        "LO Object ID": "5e0c3f9a-2b1d-4c6e-9f47-1a2b3c4d5e01",
        "Transcript Status": "Completed",
        "Transcript Completed Date": "07/06/2024 09:00 AM",
        "Training Hours": "1.5",
        "Transcript Score": "90",
        "_dl_error_code": None,
    }
    for column, value in completed.items():
        table = set_cell(table, 24, column, value)
    pq.write_table(table, deadletter)


def dead_rows(deadletter: Path) -> dict[int, dict[str, Any]]:
    """Dead-letter rows by ``_dl_source_row``."""
    return {row["_dl_source_row"]: row for row in pq.read_table(deadletter).to_pylist()}


def payloads(folder: Path) -> list[dict[str, Any]]:
    """The lines of a dry run's payloads.jsonl."""
    text = (folder / "payloads.jsonl").read_bytes().splitlines()
    return [orjson.loads(line) for line in text]


def report(folder: Path) -> dict[str, Any]:
    """report.json of a run folder."""
    data: dict[str, Any] = orjson.loads((folder / "report.json").read_bytes())
    return data


@pytest.fixture
def fixed_deadletter(tmp_path: Path) -> Path:
    """The cornerstone sample's dead-letter after a dry run, with rows 7, 10 and 24 fixed."""
    deadletter = first_dry_run(CORNERSTONE, CORNERSTONE_MAPPING, tmp_path / "first")
    assert {row: r["_dl_error_code"] for row, r in dead_rows(deadletter).items()} == FIRST_CODES
    fix_cornerstone(deadletter)
    return deadletter


def test_dry_replay_sends_fixed_rows_and_keeps_origins(
    fixed_deadletter: Path, tmp_path: Path
) -> None:
    """Fixed rows would be sent from their original row; the rest are dead-lettered there again."""
    out = tmp_path / "replay"
    result = invoke(
        "replay", str(fixed_deadletter.parent), "-m", str(CORNERSTONE_MAPPING), "--dry-run",
        "--out", str(out), "--ledger", str(tmp_path / "none.sqlite"),
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "3 of 8 replayed rows now succeed" in result.output

    sent = payloads(out)
    assert sorted(line["source_row"] for line in sent) == list(FIXED)
    assert {line["source_file"] for line in sent} == {str(CORNERSTONE)}
    by_row = {line["source_row"]: line for line in sent}
    assert by_row[7]["user_id"] == "0041241"
    assert by_row[7]["body"]["learning_object_external_reference"].endswith("5e02")
    assert by_row[10]["body"]["time_spent"] == "PT1H"
    assert by_row[24]["body"]["completed_at"] == "2024-07-06T13:00:00.000Z"

    again = dead_rows(out / "deadletter.parquet")
    assert {row: r["_dl_error_code"] for row, r in again.items()} == {
        row: code for row, code in FIRST_CODES.items() if row not in FIXED
    }
    assert {r["_dl_source_file"] for r in again.values()} == {str(CORNERSTONE)}
    assert again[11]["_dl_error_message"].endswith(f"({STILL_MALFORMED})")
    assert again[11]["_dl_error_message"].startswith("line 13: expected 11 fields, found 12")
    assert again[23]["User Full Name"] == "Former Employee"
    assert list(pq.read_schema(out / "deadletter.parquet").names[-len(DL_COLUMNS) :]) == [
        name for name, _ in DL_COLUMNS
    ]

    summary = report(out)
    assert summary["rows_read"] == 8
    assert summary["outcomes"]["would_send"] == 3
    assert summary["outcomes"]["invalid"] == 5
    assert sum(summary["outcomes"].values()) == summary["rows_read"]
    assert summary["sources"] == [str(fixed_deadletter)]


def test_replaying_a_replay_keeps_the_hint_once(fixed_deadletter: Path, tmp_path: Path) -> None:
    """A still-malformed row replayed twice is explained once, not with the hint repeated."""
    first, second = tmp_path / "r1", tmp_path / "r2"
    for source, out in ((fixed_deadletter, first), (first / "deadletter.parquet", second)):
        result = invoke(
            "replay", str(source), "-m", str(CORNERSTONE_MAPPING), "--dry-run", "--out", str(out),
            "--ledger", str(tmp_path / "none.sqlite"),
        )  # fmt: skip
        assert result.exit_code == 1, result.output
    message = dead_rows(second / "deadletter.parquet")[11]["_dl_error_message"]
    assert message.count(STILL_MALFORMED) == 1
    assert (
        dead_rows(second / "deadletter.parquet").keys()
        == dead_rows(first / "deadletter.parquet").keys()
    )


def test_delivering_replay_sends_fixed_rows_once(
    fixed_deadletter: Path, tmp_path: Path, sandbox: RunningSandbox
) -> None:
    """Against the sandbox the fixed rows are delivered; a second replay finds them delivered."""
    env = {
        "STACKONE_BASE_URL": sandbox.base_url,
        "STACKONE_API_KEY": SANDBOX_KEY,
        "STACKONE_ACCOUNT_ID": SANDBOX_ACCOUNT,
    }
    ledger = tmp_path / "ledger.sqlite"
    out = tmp_path / "replay"
    args = [
        "replay",
        str(fixed_deadletter),
        "-m",
        str(CORNERSTONE_MAPPING),
        "--ledger",
        str(ledger),
    ]
    result = invoke(*args, "--out", str(out), env=env)
    assert result.exit_code == 1, result.output
    assert "3 of 8 replayed rows now succeed" in result.output
    stored = sandbox.completions()
    assert sorted(c["user_id"] for c in stored) == ["0041241", "0041244", "0041254"]
    summary = report(out)
    assert (summary["outcomes"]["delivered"], summary["outcomes"]["invalid"]) == (3, 5)
    assert sum(summary["outcomes"].values()) == summary["rows_read"] == 8
    again = dead_rows(out / "deadletter.parquet")
    assert sorted(again) == [8, 9, 11, 13, 23]
    assert {r["_dl_source_file"] for r in again.values()} == {str(CORNERSTONE)}

    result = invoke(*args, "--out", str(tmp_path / "replay2"), env=env)
    assert result.exit_code == 1, result.output
    assert "3 of 8 replayed rows now succeed" in result.output
    assert report(tmp_path / "replay2")["reasons"]["already_delivered"] == 3
    assert len(sandbox.completions()) == 3


def test_rows_failing_at_delivery_keep_their_origin(
    fixed_deadletter: Path, tmp_path: Path, make_sandbox: Callable[..., RunningSandbox]
) -> None:
    """A replayed row the API rejects (404) is dead-lettered at stage deliver under its first row."""
    running = make_sandbox(users=[{"id": "0041241"}, {"id": "0041254"}])
    env = {
        "STACKONE_BASE_URL": running.base_url,
        "STACKONE_API_KEY": SANDBOX_KEY,
        "STACKONE_ACCOUNT_ID": SANDBOX_ACCOUNT,
    }
    out = tmp_path / "replay"
    result = invoke(
        "replay", str(fixed_deadletter), "-m", str(CORNERSTONE_MAPPING), "--out", str(out),
        "--ledger", str(tmp_path / "ledger.sqlite"), env=env,
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "2 of 8 replayed rows now succeed" in result.output
    failed = dead_rows(out / "deadletter.parquet")[10]
    assert (failed["_dl_stage"], failed["_dl_error_code"], failed["_dl_http_status"]) == (
        "deliver",
        "http_404",
        404,
    )
    assert failed["_dl_source_file"] == str(CORNERSTONE)
    assert failed["Training Hours"] == "1.00"


@pytest.mark.parametrize(("sample", "mapping"), SAMPLE_RUNS)
def test_unfixed_deadletter_replays_to_itself(sample: str, mapping: str, tmp_path: Path) -> None:
    """Replaying an untouched dead-letter reproduces it: same rows, codes, origins and types."""
    first = first_dry_run(SAMPLES / sample, MAPPINGS / mapping, tmp_path / "first")
    out = tmp_path / "replay"
    result = invoke(
        "replay", str(first), "-m", str(MAPPINGS / mapping), "--dry-run", "--out", str(out),
        "--ledger", str(tmp_path / "none.sqlite"),
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    before, after = pq.read_table(first), pq.read_table(out / "deadletter.parquet")
    assert after.schema == before.schema
    kept = [name for name in before.column_names if name not in ("_dl_error_message", "_dl_errors")]
    assert after.select(kept).to_pylist() == before.select(kept).to_pylist()
    assert report(out)["outcomes"]["invalid"] == before.num_rows


def test_rows_are_chunked_by_their_original_file(tmp_path: Path) -> None:
    """Rows from several sources (and one added by hand) keep their own file and row number."""
    a, b = str(tmp_path / "a.csv"), str(tmp_path / "b.csv")
    deadletter = tmp_path / "deadletter.parquet"
    table = pa.table(
        {
            "User ID": ["u1", "u2", "u3", "u4", "u5", "u6"],
            "_dl_error_code": ["invalid_user"] * 6,
            "_dl_source_file": [a, a, b, a, None, b],
            "_dl_source_row": pa.array([3, 5, 2, 9, None, 4], pa.int64()),
        }
    )
    pq.write_table(table, deadletter)
    spec = load_mapping(CORNERSTONE_MAPPING, {})
    schema = union_schema([pq.read_schema(deadletter)])
    for batch_rows in (100, 2):
        plan = RunPlan(spec, [deadletter], schema, ACCOUNT, batch_rows, replay=True)
        chunks = list(iter_chunks(plan))
        got = [
            (str(chunk.source), row, user)
            for chunk in chunks
            for row, user in zip(
                chunk.batch.rows.to_pylist(),
                chunk.batch.table.column("User ID").to_pylist(),
                strict=True,
            )
        ]
        assert got == [
            (a, 3, "u1"),
            (a, 5, "u2"),
            (b, 2, "u3"),
            (a, 9, "u4"),
            (str(deadletter), 5, "u5"),
            (b, 4, "u6"),
        ]
        assert all(chunk.batch.table.column_names == ["User ID"] for chunk in chunks)
        assert [chunk.first_ordinal for chunk in chunks][:2] == [0, 2]


def test_plan_replay_checks_the_mapping_against_the_deadletter(fixed_deadletter: Path) -> None:
    """A replay plan reads Parquet whatever the mapping says and is marked as a replay."""
    spec = load_mapping(CORNERSTONE_MAPPING, {})
    plan = plan_replay([str(fixed_deadletter.parent)], spec, ACCOUNT)
    assert plan.replay and plan.spec.source.format == "parquet"
    assert plan.sources == [fixed_deadletter]
    assert "_dl_source_row" in plan.deadletter_schema.names
    assert plan.deadletter_schema.names.count("_dl_source_row") == 1


@pytest.mark.parametrize("name", ["deadletter.csv", "report.json"])
def test_only_deadletter_parquet_files_replay(fixed_deadletter: Path, name: str) -> None:
    """The CSV copy (or any other file) is refused with exit 2 and a line saying what to pass."""
    result = invoke(
        "replay", str(fixed_deadletter.parent / name), "-m", str(CORNERSTONE_MAPPING), "--dry-run"
    )
    assert result.exit_code == 2, result.output
    assert "deadletter.parquet" in result.output


def test_parquet_without_origin_columns_is_refused(tmp_path: Path) -> None:
    """A Parquet export that is not a dead-letter file says which column is missing."""
    path = tmp_path / "export.parquet"
    pq.write_table(pa.table({"User ID": ["1"], "_dl_source_file": ["x.csv"]}), path)
    result = invoke("replay", str(path), "-m", str(CORNERSTONE_MAPPING), "--dry-run")
    assert result.exit_code == 2, result.output
    assert "no _dl_source_row column" in result.output


def test_keep_runs_prunes_old_run_folders(
    fixed_deadletter: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--keep-runs N leaves the N newest folders of data/runs/, this replay's own among them."""
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "data" / "runs"
    for name in ("20240101T000000Z-0001", "20240102T000000Z-0002", "20240103T000000Z-0003"):
        (runs / name).mkdir(parents=True)
        (runs / name / "report.json").write_text("{}")
    result = invoke(
        "replay", str(fixed_deadletter), "-m", str(CORNERSTONE_MAPPING), "--dry-run",
        "--ledger", str(tmp_path / "none.sqlite"), "--keep-runs", "2",
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    kept = sorted(p.name for p in runs.iterdir())
    assert kept[0] == "20240103T000000Z-0003"
    assert len(kept) == 2
    assert (runs / kept[1] / "payloads.jsonl").is_file()  # this replay's folder
