"""The jobs of issue 4 in plain mode: nightly sync, backfill, ad hoc import (``pipelines/run/jobs.py``).

The CLI runs in-process (``CliRunner``) against the real sandbox over HTTP; the ledger and the
processed-export fingerprints live in a SQLite file under ``tmp_path``. ``run_files`` is also
driven directly with a scripted ``run_one`` where the real sandbox cannot set up the case exactly.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from pipelines.cli.app import app
from pipelines.core.settings import RunOptions, Settings
from pipelines.core.state_location import StateLocation
from pipelines.output.report import RunReport
from pipelines.run.jobs import landing_files, run_files
from pipelines.run.plan import load_mapping
from pipelines.sandbox import RunningSandbox
from pipelines.source.fingerprints import fingerprint
from pipelines.state.processed_exports import ProcessedExports
from tests.conftest import max_requests_in_window

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "data" / "samples" / "workday_learning.csv"
MAPPING = ROOT / "config" / "mappings" / "workday_learning.yaml"
ACCOUNT = "sandbox-account"
KEY = "sandbox-key"
WORKDAY_HEADER = [
    "Employee ID",
    "Worker",
    "Supervisory Organization",
    "Learning Content",
    "Learning Content Type",
    "Learning Content Reference ID",
    "Completion Status",
    "Completion Date",
    "Duration",
    "Score",
]
SAMPLE_SENT = 10  # rows of workday_learning.csv a first delivering run sends (data/samples/README)
SAMPLE_ROWS = 20


@pytest.fixture
def fast_sandbox(make_sandbox: Callable[..., RunningSandbox]) -> RunningSandbox:
    """A sandbox whose rate limit never gets in the way of a test."""
    return make_sandbox(rate_limit=(100_000, 1.0))


def env_for(sandbox: RunningSandbox, **extra: str | None) -> dict[str, str | None]:
    """The environment of a delivering run against ``sandbox`` (no Prefect server, fast rate)."""
    return {
        "STACKONE_API_KEY": KEY,
        "STACKONE_ACCOUNT_ID": ACCOUNT,
        "STACKONE_BASE_URL": sandbox.base_url,
        "PREFECT_API_URL": None,
        "LMS_SYNC_RATE_LIMIT": "100000/1s",
        **extra,
    }


def lms_sync(env: dict[str, str | None], *args: str | Path) -> Result:
    """Run ``lms-sync ARGS`` in-process."""
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def nightly(sandbox: RunningSandbox, tmp: Path, *extra: str | Path) -> Result:
    """``lms-sync nightly tmp/landing`` with the ledger and run folders under ``tmp``."""
    return lms_sync(
        env_for(sandbox),
        "nightly",
        tmp / "landing",
        "-m",
        MAPPING,
        "--ledger",
        tmp / "ledger.sqlite",
        "--out",
        tmp / "runs",
        *extra,
    )


def land(tmp: Path, name: str, data: bytes, mtime: float | None = None) -> Path:
    """Drop an export into the landing directory, optionally with a given modification time."""
    path = tmp / "landing" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def renamed_users(prefix: str) -> bytes:
    """The Workday sample with every employee id prefixed: the same shape, other idempotency keys."""
    text = SAMPLE.read_bytes().decode("utf-8-sig")
    return re.sub(r"(?m)^(\d{5});", lambda m: f"{prefix}{m.group(1)};", text).encode()


def posts(sandbox: RunningSandbox) -> list[dict[str, Any]]:
    """Completion requests the sandbox received."""
    return [entry for entry in sandbox.request_log() if entry["method"] == "POST"]


def processed_runs(output: str) -> list[str]:
    """File names in the order the job ran them (its ``[i/n] name:`` progress lines)."""
    return re.findall(r"^\[\d+/\d+\] (\S+):", output, flags=re.MULTILINE)


# --- fingerprints ----------------------------------------------------------------------------


def test_fingerprint_depends_on_content_only(tmp_path: Path) -> None:
    """The same bytes under another name or mtime are the same export; one changed byte is not."""
    a = land(tmp_path, "a.csv", SAMPLE.read_bytes(), mtime=1_000_000)
    b = land(tmp_path, "copy of a.csv", SAMPLE.read_bytes())
    c = land(tmp_path, "c.csv", SAMPLE.read_bytes() + b"\n")
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint(c)
    assert re.fullmatch(r"[0-9a-f]{32}", fingerprint(a))
    assert fingerprint(a, chunk_bytes=7) == fingerprint(a)


def test_processed_exports_are_kept_per_target(tmp_path: Path) -> None:
    """A file processed against the sandbox is not processed for production (and vice versa)."""
    db = tmp_path / "ledger.sqlite"
    with ProcessedExports(db, "http://127.0.0.1:1") as sandbox_target:
        sandbox_target.mark("ab" * 16, tmp_path / "a.csv", "run-1", 20)
        assert sandbox_target.seen("ab" * 16) == "run-1"
        assert sandbox_target.seen("cd" * 16) is None
    with ProcessedExports(db, "https://api.stackone.com") as production:
        assert production.seen("ab" * 16) is None
    assert db.stat().st_mode & 0o077 == 0


# --- nightly ---------------------------------------------------------------------------------


def test_nightly_twice_sends_nothing_the_second_time(
    fast_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """The second nightly run makes no request at all and reports the file as already processed."""
    land(tmp_path, "enrollments.csv", SAMPLE.read_bytes())
    first = nightly(fast_sandbox, tmp_path)
    assert first.exit_code == 1, first.output  # the sample has dead-lettered rows
    assert len(posts(fast_sandbox)) == SAMPLE_SENT
    assert len(fast_sandbox.completions()) == SAMPLE_SENT

    fast_sandbox.reset()  # empty request log, so "nothing sent" is exact
    second = nightly(fast_sandbox, tmp_path)
    assert second.exit_code == 0, second.output
    assert fast_sandbox.request_log() == []
    assert "enrollments.csv: already processed by run" in second.output
    assert "already processed, skipped: 1 file(s)" in second.output
    assert processed_runs(second.output) == []


def test_nightly_processes_only_new_files_oldest_first(
    fast_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """After a first night, only newly landed files run, in modification-time order."""
    land(tmp_path, "monday.csv", renamed_users("1"), mtime=1_700_000_000)
    assert nightly(fast_sandbox, tmp_path).exit_code == 1
    fast_sandbox.reset()

    # Landed later, named so that name order and age order disagree.
    land(tmp_path, "b-tuesday.csv", renamed_users("2"), mtime=1_700_086_400)
    land(tmp_path, "a-wednesday.csv", renamed_users("3"), mtime=1_700_172_800)
    result = nightly(fast_sandbox, tmp_path)
    assert result.exit_code == 1, result.output
    assert processed_runs(result.output) == ["b-tuesday.csv", "a-wednesday.csv"]
    assert "monday.csv: already processed" in result.output
    users = {entry["path"].split("/")[4] for entry in posts(fast_sandbox)}
    assert len(posts(fast_sandbox)) == 2 * SAMPLE_SENT
    assert {user[0] for user in users} == {"2", "3"}


def test_landing_files_are_ordered_by_age_then_name(tmp_path: Path) -> None:
    """Oldest first; files landed in the same second run in name order."""
    land(tmp_path, "c.csv", b"x\n", mtime=100)
    land(tmp_path, "b.csv", b"x\n", mtime=200)
    land(tmp_path, "a.csv", b"x\n", mtime=200)
    land(tmp_path, "notes.txt", b"not an export\n", mtime=50)
    names = [p.name for p in landing_files(str(tmp_path / "landing"))]
    assert names == ["c.csv", "a.csv", "b.csv"]


def test_nightly_recognises_a_file_copied_under_a_new_name(
    fast_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """An export re-delivered under a new name is skipped by its fingerprint, not re-read."""
    original = land(tmp_path, "export_2024-06-01.csv", SAMPLE.read_bytes())
    assert nightly(fast_sandbox, tmp_path).exit_code == 1
    original.unlink()
    land(tmp_path, "export_2024-06-01 (1).csv", SAMPLE.read_bytes())
    fast_sandbox.reset()

    result = nightly(fast_sandbox, tmp_path)
    assert result.exit_code == 0, result.output
    assert "export_2024-06-01 (1).csv: already processed by run" in result.output
    assert fast_sandbox.request_log() == []


def test_nightly_runs_a_file_and_its_copy_landed_together_once(
    fast_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """Two identical files landed the same night: one run; the copy counts as processed."""
    land(tmp_path, "a.csv", SAMPLE.read_bytes(), mtime=1_700_000_000)
    land(tmp_path, "a-copy.csv", SAMPLE.read_bytes(), mtime=1_700_000_100)
    result = nightly(fast_sandbox, tmp_path)
    assert result.exit_code == 1, result.output
    assert processed_runs(result.output) == ["a.csv"]
    assert "a-copy.csv: same content as a.csv" in result.output
    assert "already processed, skipped: 1 file(s)" in result.output
    assert len(posts(fast_sandbox)) == SAMPLE_SENT


def test_a_stopped_run_is_not_marked_processed_and_runs_again(
    fast_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """A run aborted by a 401 leaves rows pending: the file is not marked; the next night sends it.

    The files after the aborted one are not started (and not marked) either.
    """
    land(tmp_path, "first.csv", renamed_users("1"), mtime=1_700_000_000)
    land(tmp_path, "second.csv", renamed_users("2"), mtime=1_700_000_100)
    fast_sandbox.config.api_keys.clear()  # the key is revoked: every request is 401
    stopped = nightly(fast_sandbox, tmp_path)
    assert stopped.exit_code == 3, stopped.output
    assert processed_runs(stopped.output) == ["first.csv"]
    assert "not started (run stopped): 1 file(s)" in stopped.output
    [report_path] = tmp_path.glob("runs/first*/report.json")
    report = json.loads(report_path.read_text())
    assert report["outcomes"]["pending"] > 0
    assert report["outcomes"]["delivered"] == 0
    assert fast_sandbox.completions() == []

    fast_sandbox.config.api_keys.add(KEY)  # the key works again
    resumed = nightly(fast_sandbox, tmp_path)
    assert resumed.exit_code == 1, resumed.output  # dead-lettered sample rows
    assert processed_runs(resumed.output) == ["first.csv", "second.csv"]
    assert "already processed" not in resumed.output
    assert len(fast_sandbox.completions()) == 2 * SAMPLE_SENT

    fast_sandbox.reset()
    assert nightly(fast_sandbox, tmp_path).exit_code == 0
    assert fast_sandbox.request_log() == []


def test_rows_that_failed_keep_the_file_open_until_they_give_up(
    make_sandbox: Callable[..., RunningSandbox], tmp_path: Path
) -> None:
    """A 4xx row is retried by the next nights (DESIGN §7: until it failed in 3 runs); then the
    file counts as processed and the night after sends nothing.
    """
    users = [{"id": f"2100{i}"} for i in range(10)] + [{"id": f"210{i}"} for i in range(10, 21)]
    users = [user for user in users if user["id"] != "21001"]  # row 1's user is unknown: 404
    sandbox = make_sandbox(rate_limit=(100_000, 1.0), users=users)
    land(tmp_path, "enrollments.csv", SAMPLE.read_bytes())
    first = nightly(sandbox, tmp_path)
    assert first.exit_code == 1, first.output
    assert len(sandbox.completions()) == SAMPLE_SENT - 1
    statuses: list[list[int]] = []
    for _night in range(4):
        sandbox.reset()
        result = nightly(sandbox, tmp_path)
        assert result.exit_code in (0, 1), result.output
        statuses.append([entry["status"] for entry in sandbox.request_log()])
    # Nights 2 and 3 retry the one failed row (its 2nd and 3rd failed run); night 4 reads the
    # file, finds the row given up (no request) and marks the file; night 5 skips it.
    assert statuses == [[404], [404], [], []]
    assert "enrollments.csv: already processed" in result.output


def test_dry_run_neither_marks_nor_creates_the_ledger(
    fast_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """A dry nightly run writes no state: the next real run still processes the file."""
    land(tmp_path, "enrollments.csv", SAMPLE.read_bytes())
    dry = nightly(fast_sandbox, tmp_path, "--dry-run")
    assert dry.exit_code == 1, dry.output
    assert not (tmp_path / "ledger.sqlite").exists()
    assert fast_sandbox.request_log() == []

    real = nightly(fast_sandbox, tmp_path)
    assert processed_runs(real.output) == ["enrollments.csv"]
    assert len(fast_sandbox.completions()) == SAMPLE_SENT


def test_an_empty_landing_directory_is_a_quiet_night(
    fast_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """Nothing landed is a normal night: exit 0, no request, no error."""
    (tmp_path / "landing").mkdir()
    result = nightly(fast_sandbox, tmp_path)
    assert result.exit_code == 0, result.output
    assert "error" not in result.output
    assert fast_sandbox.request_log() == []


@pytest.mark.parametrize(("pct", "code"), [("10", 1), ("29.9", 1), ("30", 0), ("50", 0)])
def test_max_invalid_pct_decides_the_exit_code(
    fast_sandbox: RunningSandbox, tmp_path: Path, pct: str, code: int
) -> None:
    """The sample has 6 of 20 rows invalid (30 %): above the threshold fails, at or below passes."""
    land(tmp_path, "enrollments.csv", SAMPLE.read_bytes())
    result = nightly(fast_sandbox, tmp_path, "--max-invalid-pct", pct)
    assert result.exit_code == code, result.output
    assert len(fast_sandbox.completions()) == SAMPLE_SENT


def test_max_invalid_pct_applies_to_dry_runs_too(
    fast_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """A dry run under the threshold exits 0 although rows were dead-lettered."""
    land(tmp_path, "enrollments.csv", SAMPLE.read_bytes())
    assert nightly(fast_sandbox, tmp_path, "--dry-run", "--max-invalid-pct", "31").exit_code == 0
    assert nightly(fast_sandbox, tmp_path, "--dry-run", "--max-invalid-pct", "5").exit_code == 1


# --- backfill --------------------------------------------------------------------------------


def write_history(folder: Path, files: int, rows: int, first: int = 0) -> list[Path]:
    """``files`` Workday-shaped CSVs of ``rows`` valid rows each, every row its own user."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for f in range(first, first + files):
        path = folder / f"learning_2023-{f + 1:02d}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, delimiter=";")
            writer.writerow(WORKDAY_HEADER)
            for r in range(rows):
                writer.writerow(
                    [
                        f"{f + 1}{r:05d}",
                        f"Worker {f}-{r}",
                        "Sales EMEA (Jordan Blake)",
                        "Data Privacy Essentials",
                        "Digital Course",
                        f"COURSE-{r % 7:06d}",
                        "Completed" if r % 5 else "Not Completed",
                        f"2023-{f + 1:02d}-{r % 28 + 1:02d}T09:{r % 60:02d}:00-07:00",
                        f"{r % 3 + 1}h {r % 60}m",
                        str(r % 101),
                    ]
                )
        paths.append(path)
    return paths


@pytest.fixture
def revoke_after() -> Iterator[Callable[[RunningSandbox, int], None]]:
    """``revoke_after(sandbox, n)``: revoke the API key once the sandbox has stored ``n`` rows."""
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start(sandbox: RunningSandbox, stored: int) -> None:
        def watch() -> None:
            while not stop.wait(0.005):
                if sum(e["status"] == 201 for e in sandbox.request_log()) >= stored:
                    sandbox.config.api_keys.clear()
                    return

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        threads.append(thread)

    yield start
    stop.set()
    for thread in threads:
        thread.join(timeout=5)


def test_backfill_stopped_part_way_resumes_and_stores_every_row_once(
    make_sandbox: Callable[..., RunningSandbox],
    revoke_after: Callable[[RunningSandbox, int], None],
    tmp_path: Path,
) -> None:
    """4 files x 120 rows; the key is revoked in the second file (401 aborts the run); the same
    command run again finishes. Every row ends stored exactly once, rows the first run delivered
    are not sent again, and both runs print progress lines (rows done, rows/s, requests, ETA).
    """
    files, rows = 4, 120
    total = files * rows
    sandbox = make_sandbox(rate_limit=(100_000, 1.0), latency=(1.0, 3.0))
    write_history(tmp_path / "history", files=files, rows=rows)
    env = env_for(sandbox, LMS_SYNC_CONCURRENCY="4")
    args = (
        "backfill",
        tmp_path / "history",
        "-m",
        MAPPING,
        "--ledger",
        tmp_path / "ledger.sqlite",
        "--out",
        tmp_path / "runs",
    )
    revoke_after(sandbox, 150)
    first = lms_sync(env, *args)
    assert first.exit_code == 3, first.output
    first_log = sandbox.request_log()
    delivered_first = {e["path"] for e in first_log if e["status"] == 201}
    assert 150 <= len(delivered_first) < total
    assert any(e["status"] == 401 for e in first_log)
    assert f"to send: {total} requests" in first.output
    progress = rf"\[1/4\] learning_2023-01\.csv: {rows} rows · total {rows} rows, [\d,]+ rows/s · "
    assert re.search(progress + rf"{total - rows} requests left, ETA \d+ s", first.output)
    assert "stopped: " in first.output and "file(s) not started" in first.output

    sandbox.config.api_keys.add(KEY)
    second = lms_sync(env, *args)
    assert second.exit_code == 0, second.output
    second_posts = [e for e in sandbox.request_log()[len(first_log) :] if e["method"] == "POST"]
    unanswered = {e["path"] for e in first_log if e["status"] == 0}
    assert {e["path"] for e in second_posts} & delivered_first <= unanswered
    assert f"to send: {len(second_posts)} requests" in second.output
    assert re.search(r"\[\d/\d\] learning_2023-04\.csv: .* rows/s · 0 requests left", second.output)
    assert "learning_2023-01.csv: already processed by run" in second.output

    stored = sandbox.completions()
    assert len(stored) == total
    assert max(Counter(row["user_id"] for row in stored).values()) == 1
    reports = [json.loads(p.read_text()) for p in (tmp_path / "runs").glob("*/report.json")]
    assert (
        sum(r["outcomes"]["delivered"] + r["reasons"].get("http_409", 0) for r in reports) == total
    )
    assert all(r["rows_read"] == sum(r["outcomes"].values()) for r in reports)


def test_backfill_keeps_files_with_the_same_name_apart(
    fast_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """Partitions often hold files of one name (``part-0.csv``): each run keeps its own folder."""
    (tmp_path / "p=1").mkdir()
    (tmp_path / "p=2").mkdir()
    (tmp_path / "p=1" / "part-0.csv").write_bytes(renamed_users("1"))
    (tmp_path / "p=2" / "part-0.csv").write_bytes(renamed_users("2"))
    result = lms_sync(
        env_for(fast_sandbox),
        "backfill",
        tmp_path / "p=1",
        tmp_path / "p=2",
        "-m",
        MAPPING,
        "--ledger",
        tmp_path / "ledger.sqlite",
        "--out",
        tmp_path / "runs",
    )
    assert result.exit_code == 1, result.output
    reports = sorted((tmp_path / "runs").glob("*/report.json"))
    assert len(reports) == 2
    sources = {json.loads(p.read_text())["sources"][0] for p in reports}
    assert sources == {str(tmp_path / "p=1" / "part-0.csv"), str(tmp_path / "p=2" / "part-0.csv")}
    for path in reports:
        assert (path.parent / "deadletter.csv").exists()


def test_backfill_of_a_partitioned_directory_reads_its_subfolders(
    fast_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """``backfill exports/`` over ``exports/year=…/month=…/`` files finds every partition."""
    write_history(tmp_path / "exports" / "year=2023" / "month=01", files=1, rows=5)
    write_history(tmp_path / "exports" / "year=2023" / "month=02", files=1, rows=5, first=1)
    (tmp_path / "exports" / "_SUCCESS").write_text("")
    (tmp_path / "exports" / "_temporary").mkdir()
    (tmp_path / "exports" / "_temporary" / "part-9.csv").write_text("half written")
    result = lms_sync(
        env_for(fast_sandbox),
        "backfill",
        tmp_path / "exports",
        "-m",
        MAPPING,
        "--ledger",
        tmp_path / "ledger.sqlite",
        "--dry-run",
        "--out",
        tmp_path / "runs",
    )
    assert result.exit_code == 0, result.output
    assert len(processed_runs(result.output)) == 2


# --- import ----------------------------------------------------------------------------------


def test_import_dry_run_previews_summarises_errors_and_estimates(tmp_path: Path) -> None:
    """The default (dry) import shows payloads, dead-letter codes and the cost; the sample exits 1."""
    env: dict[str, str | None] = {
        "STACKONE_ACCOUNT_ID": ACCOUNT,
        "STACKONE_API_KEY": None,
        "STACKONE_BASE_URL": None,
        "PREFECT_API_URL": None,
    }
    result = lms_sync(
        env,
        "import",
        SAMPLE,
        "-m",
        MAPPING,
        "--out",
        tmp_path / "run",
        "--ledger",
        tmp_path / "ledger.sqlite",
        "--preview",
        "3",
    )
    assert result.exit_code == 1, result.output
    out = result.output
    assert "first 3 payloads" in out
    for converted in ("21001", "2024-05-14T16:12:33.000Z", "PT1H30M", "2024-04-22T22:00:00.000Z"):
        assert converted in out  # never cut short, however narrow the terminal
    assert "dead-lettered rows by error code" in out
    for code in ("missing_required", "invalid_timestamp", "future_timestamp", "malformed_row"):
        assert code in out
    assert "a real run: 10 requests ≈ 2 s at 950/60s  (add --send to deliver)" in out
    assert "rows read 20: would_send 10, duplicate 1, skipped 3, invalid 6" in out
    assert len((tmp_path / "run" / "payloads.jsonl").read_text().splitlines()) == SAMPLE_SENT
    assert not (tmp_path / "ledger.sqlite").exists()


def test_import_send_delivers(fast_sandbox: RunningSandbox, tmp_path: Path) -> None:
    """``import --send`` delivers the valid rows; a second ``--send`` finds them delivered."""
    args = ("import", SAMPLE, "-m", MAPPING, "--send", "--ledger", tmp_path / "ledger.sqlite")
    first = lms_sync(env_for(fast_sandbox), *args, "--out", tmp_path / "one")
    assert first.exit_code == 1, first.output
    assert "delivered 10" in first.output
    assert "first 10 payloads" not in first.output
    assert len(fast_sandbox.completions()) == SAMPLE_SENT
    again = lms_sync(env_for(fast_sandbox), *args, "--out", tmp_path / "two")
    assert "duplicate 11" in again.output
    assert len(posts(fast_sandbox)) == SAMPLE_SENT


# --- run_files, driven directly ---------------------------------------------------------------


RunOne = Callable[[Path, RunOptions], Any]


def scripted(outcomes: dict[str, dict[str, int]], calls: list[str]) -> RunOne:
    """A ``run_one`` that reports the given outcomes per file name instead of running anything."""

    async def run_one(path: Path, options: RunOptions) -> RunReport:
        calls.append(path.name)
        report = RunReport(f"run-{path.stem}", "deliver", "t", [str(path)], datetime.now(UTC))
        for outcome, count in outcomes[path.name].items():
            report.add(outcome, count)
        report.rows_read = sum(outcomes[path.name].values())
        if outcomes[path.name].get("pending"):
            report.aborted = "interrupted"
        return report

    return run_one


def run_job(tmp: Path, files: list[Path], run_one: RunOne, said: list[str]) -> Any:
    """``run_files`` over ``files`` with the Workday mapping and a ledger under ``tmp``."""
    settings = Settings(api_key=KEY, account_id=ACCOUNT, base_url="http://127.0.0.1:9")
    options = RunOptions(out=tmp / "runs", state=StateLocation.sqlite(tmp / "ledger.sqlite"))
    spec = load_mapping(MAPPING, {})
    return asyncio.run(
        run_files("nightly_sync", files, spec, settings, options, run_one, said.append)
    )


def test_run_files_stops_at_an_aborted_run_and_marks_only_finished_files(tmp_path: Path) -> None:
    """Files before the stop are marked; the stopped file and the ones after it are not."""
    files = [land(tmp_path, f"{n}.csv", renamed_users(str(i))) for i, n in enumerate("abc", 1)]
    outcomes = {
        "a.csv": {"delivered": 10, "invalid": 10},
        "b.csv": {"delivered": 4, "pending": 6, "invalid": 10},
        "c.csv": {"delivered": 10, "invalid": 10},
    }
    calls: list[str] = []
    said: list[str] = []
    summary = run_job(tmp_path, files, scripted(outcomes, calls), said)
    assert calls == ["a.csv", "b.csv"]
    assert summary.not_started == [str(files[2])]
    assert summary.exit_code() == 3
    assert [Path(r.sources[0]).name for r in summary.reports] == ["a.csv", "b.csv"]
    with ProcessedExports(tmp_path / "ledger.sqlite", "http://127.0.0.1:9") as registry:
        assert registry.seen(fingerprint(files[0])) == "run-a"
        assert registry.seen(fingerprint(files[1])) is None
        assert registry.seen(fingerprint(files[2])) is None
    assert any(line.startswith("stopped: interrupted; 1 file(s) not started") for line in said)

    calls.clear()
    outcomes["b.csv"] = {"delivered": 6, "duplicate": 4, "invalid": 10}
    summary = run_job(tmp_path, files, scripted(outcomes, calls), said)
    assert calls == ["b.csv", "c.csv"]
    assert summary.already_processed == [str(files[0])]
    assert summary.exit_code() == 1
    assert summary.as_dict()["runs"][0]["outcomes"]["delivered"] == 6


def test_run_files_gives_each_file_its_own_run_folder(tmp_path: Path) -> None:
    """Under ``--out`` every file's run gets a folder named after it, never shared or reused."""
    files = [
        land(tmp_path, name, renamed_users(str(i))) for i, name in enumerate(["x.csv", "y.csv"], 1)
    ]
    other = tmp_path / "elsewhere" / "x.csv"
    other.parent.mkdir()
    other.write_bytes(renamed_users("3"))
    (tmp_path / "runs" / "y").mkdir(parents=True)  # left by an earlier run of another y.csv
    folders: list[Path | None] = []

    async def run_one(path: Path, options: RunOptions) -> RunReport:
        folders.append(options.out)
        assert options.out is not None
        options.out.mkdir(parents=True)  # as run_folder does; fails if the folder is shared
        return RunReport("r", "deliver", "t", [str(path)], datetime.now(UTC))

    run_job(tmp_path, [*files, other], run_one, [])
    assert folders == [
        tmp_path / "runs" / "x",
        tmp_path / "runs" / "y-2",
        tmp_path / "runs" / "x-2",
    ]


def test_backfill_in_parallel_runs_files_side_by_side_within_one_rate_budget(
    make_sandbox: Callable[..., RunningSandbox], tmp_path: Path
) -> None:
    """``--parallel 2``: four files, two runs at a time in one process, one shared budget: every
    file processed, every row sent once, the key's limit held in every window, no 429."""
    sandbox = make_sandbox(rate_limit=(40, 1.0))
    files = write_history(tmp_path / "history", 4, 40)
    result = lms_sync(
        env_for(sandbox, LMS_SYNC_RATE_LIMIT="40/1s"),
        "backfill", tmp_path / "history", "-m", MAPPING, "--parallel", "2",
        "--ledger", tmp_path / "ledger.sqlite", "--out", tmp_path / "runs",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    reports = [json.loads(p.read_text()) for p in sorted((tmp_path / "runs").glob("*/report.json"))]
    assert sorted(r["sources"][0] for r in reports) == sorted(map(str, files))
    starts = sorted(r["started_at"] for r in reports)
    assert starts[1] < min(r["finished_at"] for r in reports)  # two ran at the same time
    log = sandbox.request_log()
    users = [e["path"].split("/")[4] for e in log if e["method"] == "POST"]
    assert len(users) == len(set(users)) == sum(r["outcomes"]["delivered"] for r in reports)
    assert [e for e in log if e["status"] == 429] == []
    assert max_requests_in_window(log, 1.0) <= 40
