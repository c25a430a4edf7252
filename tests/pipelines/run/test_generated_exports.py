"""Generated exports through the whole dry run (issue 8): never an exception, counts that add up,
every row in exactly one of payloads / dead-letter / skipped / duplicate."""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, note, settings
from typer.testing import CliRunner, Result

from pipelines.cli.app import app
from tests.pipelines.run.generated_exports import Export, csv_exports
from tests.pipelines.run.generated_parquet import parquet_exports

OUTCOMES = ("delivered", "would_send", "duplicate", "skipped", "invalid", "failed", "pending")
ENV: dict[str, str | None] = {
    "STACKONE_ACCOUNT_ID": "acct-generated",
    "STACKONE_API_KEY": None,
    "STACKONE_BASE_URL": None,
    "PREFECT_API_URL": None,
    "LMS_SYNC_STATE_URL": None,
}
GENERATED = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def dry_run(tmp_path: Path, export: Export) -> tuple[Result, Path]:
    """``lms-sync run SRC -m MAPPING --dry-run`` on the export, in-process, in a fresh folder."""
    note(export.describe())
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    source = folder / export.name
    source.write_bytes(export.data)
    mapping = folder / "mapping.yaml"
    mapping.write_text(export.mapping, encoding="utf-8")
    out = folder / "run"
    args = ["run", str(source), "-m", str(mapping), "--dry-run", "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--ledger", str(folder / "none.sqlite")], env=ENV)
    note(f"exit {result.exit_code}\n{result.output}")
    return result, out


def strict_json(text: str) -> Any:
    """``text`` parsed as standard JSON (Python's json would accept NaN and Infinity)."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def payload_rows(out: Path) -> list[int]:
    """The source rows of payloads.jsonl (each line one standard JSON object)."""
    path = out / "payloads.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    return [strict_json(line)["source_row"] for line in lines]


def deadletter_rows(out: Path) -> list[int]:
    """The source rows of deadletter.parquet, after checking deadletter.csv holds as many rows."""
    path = out / "deadletter.parquet"
    if not path.exists():
        return []
    rows: list[int] = pq.read_table(path).column("_dl_source_row").to_pylist()
    with (out / "deadletter.csv").open(encoding="utf-8", newline="") as handle:
        assert sum(1 for _ in csv.DictReader(handle)) == len(rows)
    return rows


def check_mapping_error(result: Result, out: Path) -> None:
    """A mapping wrong on purpose: exit 2, one ``error:`` line, no traceback, no run folder."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), lines
    assert "Traceback" not in result.output
    assert not out.exists()


def check_partition(result: Result, out: Path, records: int) -> None:
    """Counts add up to the records written, and every row is in exactly one place."""
    assert result.exit_code in (0, 1), result.output
    report: dict[str, Any] = json.loads((out / "report.json").read_text(encoding="utf-8"))
    outcomes = report["outcomes"]
    assert set(outcomes) == set(OUTCOMES)
    assert report["rows_read"] == records
    assert sum(outcomes.values()) == records
    sent, dead = payload_rows(out), deadletter_rows(out)
    assert len(set(sent)) == len(sent) and len(set(dead)) == len(dead)
    assert not set(sent) & set(dead)
    assert set(sent) | set(dead) <= set(range(1, records + 1))
    assert len(sent) + len(dead) + outcomes["skipped"] + outcomes["duplicate"] == records
    assert (len(sent), len(dead)) == (outcomes["would_send"], outcomes["invalid"])
    assert result.exit_code == (1 if dead else 0)


def check_run(result: Result, out: Path, export: Export) -> None:
    """What every generated export must give: an exit 2 for a wrong mapping, else a whole run."""
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    if export.mapping_error:
        check_mapping_error(result, out)
    else:
        check_partition(result, out, export.records)


@GENERATED
@given(export=csv_exports())
def test_generated_csv_exports(tmp_path: Path, export: Export) -> None:
    """Any CSV export (delimiter, quoting, blanks, ragged rows, gzip) runs to a balanced report."""
    result, out = dry_run(tmp_path, export)
    check_run(result, out, export)


@GENERATED
@given(export=parquet_exports())
def test_generated_parquet_exports(tmp_path: Path, export: Export) -> None:
    """Any Parquet export (typed, nested, NaN/inf, timestamps) runs, or its wrong mapping is exit 2."""
    result, out = dry_run(tmp_path, export)
    check_run(result, out, export)
