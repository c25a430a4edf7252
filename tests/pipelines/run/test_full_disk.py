"""A disk that fills up mid-run (a child process limited by RLIMIT_FSIZE): the run ends as
crashed with the write's error, the dead-letter files are still closed and readable, the counts
add up, and they count what the output files hold: the rows in deadletter.parquet as dead-
lettered, the lines in payloads.jsonl as would_send, every other row not settled ``pending``."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipelines.sandbox import RunningSandbox
from tests.pipelines.run.test_delivery import (
    FAST,
    assert_balanced,
    child_env,
    read_report,
    settled_log,
    stored,
    write_export,
)

# payloads.jsonl of the 140,000-row export would be ~40 MB (~19 MB a chunk): it fails mid-chunk
# at 5 MB, while the dead-letter files (~1.1 MB, ~50 kB) and report.json stay below it.
_PAYLOADS_FAIL = 5_000_000
# The first chunk's ~1,300 invalid rows take ~520 kB of deadletter.csv but ~21 kB of Parquet:
# at 200 kB the CSV fails after the chunk's rows are in deadletter.parquet.
_CSV_FAILS = 200_000

_CHILD = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
from pipelines.cli.entry import main
sys.argv = ["lms-sync", *sys.argv[1:]]
main()
"""


def _limited_run(
    limit: int, env: dict[str, str], *args: str | Path, error: str = "File too large"
) -> dict[str, Any]:
    """``lms-sync run ARGS --quiet`` in a child that may write files of at most ``limit`` bytes;
    it must crash (exit 3) on a write past the limit, with ``error``. Its report.json
    (``--out``), checked to add up."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD.format(limit=limit), "run", *map(str, args), "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 3, done.stdout + done.stderr
    report = read_report(Path(args[args.index("--out") + 1]))
    assert report["status"] == "crashed"
    assert error in report["aborted"]
    assert_balanced(report)
    return report


def _dry_run_env() -> dict[str, str]:
    """The test's environment for a dry run: one account, no Prefect, no stray settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LMS_SYNC_")}
    env.update({"STACKONE_ACCOUNT_ID": "acct-1", "PREFECT_API_URL": ""})
    return env


def _dead_lettered(out: Path) -> int:
    """Rows in the run folder's deadletter.parquet (closed: its footer is there)."""
    return pq.read_table(out / "deadletter.parquet").num_rows


def test_a_full_disk_ends_the_dry_run_as_crashed_with_its_files_closed(tmp_path: Path) -> None:
    """payloads.jsonl fills up mid-chunk (on its writer thread): would_send is the number of
    lines in it, all whole (the one cut short is cut off), and the rest of the chunk pending."""
    export, mapping = write_export(tmp_path / "in", 140_000)  # three chunks
    out = tmp_path / "run"
    args = (export, "-m", mapping, "--dry-run", "--out", out)
    report = _limited_run(_PAYLOADS_FAIL, _dry_run_env(), *args)
    payloads = (out / "payloads.jsonl").read_bytes()
    assert 0 < len(payloads) <= _PAYLOADS_FAIL
    assert payloads.endswith(b"\n")  # whole lines only
    assert report["outcomes"]["would_send"] == payloads.count(b"\n") > 0
    assert report["outcomes"]["pending"] > 0  # rows read but never settled
    assert _dead_lettered(out) == report["outcomes"]["invalid"] > 0


def test_rows_in_deadletter_parquet_count_invalid_when_the_csv_copy_fails(
    tmp_path: Path,
) -> None:
    """deadletter.csv fills up after the chunk's invalid rows are in deadletter.parquet: they are
    counted invalid (with their reasons), not pending, as are the chunk's repeats (counted
    before the dead-letter write); its fresh rows got no further: pending."""
    export, mapping = write_export(tmp_path / "in", 140_000)
    out = tmp_path / "run"
    args = (export, "-m", mapping, "--dry-run", "--out", out)
    report = _limited_run(_CSV_FAILS, _dry_run_env(), *args)
    assert (out / "deadletter.csv").stat().st_size == _CSV_FAILS  # the file that failed
    invalid = report["outcomes"]["invalid"]
    assert invalid == _dead_lettered(out) > 0
    repeats = report["outcomes"]["duplicate"]
    assert report["reasons"] == {"invalid_timestamp": invalid, "duplicate_in_file": repeats}
    assert report["outcomes"]["would_send"] == 0 == (out / "payloads.jsonl").stat().st_size
    counted = invalid + repeats + report["outcomes"]["skipped"]
    assert report["outcomes"]["pending"] == report["rows_read"] - counted


def _all_invalid_export(path: Path, rows: int) -> Path:
    """An export in ``write_export``'s columns whose every row has an unreadable date."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["user_id", "course", "completed", "minutes", "status", "score", "department"])
        for i in range(rows):
            out.writerow([f"bad{i:05d}", "C-001", "not a date", "30", "Passed", "90", "dept-1"])
    return path


def test_a_delivering_run_counts_the_rows_in_deadletter_parquet_when_the_csv_fails(
    make_sandbox: Callable[..., RunningSandbox], tmp_path: Path
) -> None:
    """Delivering, the second file's invalid rows reach deadletter.parquet but not the CSV: they
    are counted invalid; the first file's rows are delivered (as the sandbox stored) or pending."""
    sandbox = make_sandbox(rate_limit=FAST)
    good, mapping = write_export(tmp_path / "in", 300)
    bad = _all_invalid_export(tmp_path / "in" / "z_bad.csv", 2_000)  # ~800 kB of CSV
    out = tmp_path / "run"
    args = (good, bad, "-m", mapping, "--out", out, "--ledger", tmp_path / "l.db")
    report = _limited_run(300_000, child_env(sandbox), *args, "--rate-limit", "2000/1s")
    assert (out / "deadletter.csv").stat().st_size == 300_000
    outcomes = report["outcomes"]
    assert outcomes["invalid"] == _dead_lettered(out) == 6 + 2_000  # every 50th of the 300
    settled_log(sandbox)  # every request the run sent has landed
    assert outcomes["delivered"] == sum(stored(sandbox).values())
    assert report["rows_read"] == 2_300


def test_a_full_disk_under_the_ledger_ends_the_delivering_run_as_crashed(
    make_sandbox: Callable[..., RunningSandbox], tmp_path: Path
) -> None:
    """Every request is refused (403: an account the key cannot reach), so every valid row fails;
    the ledger's SQLite file fills up (its writes, then the claims released at the end, fail):
    the run is crashed with the store's error and exit 3, its report.json written and adding up,
    not a traceback without a report."""
    sandbox = make_sandbox(rate_limit=FAST)
    export, mapping = write_export(tmp_path / "in", 3_000)
    out = tmp_path / "run"
    env = {**child_env(sandbox), "STACKONE_ACCOUNT_ID": "acct-nobody-knows"}
    args = (export, "-m", mapping, "--out", out, "--ledger", tmp_path / "l.db")
    report = _limited_run(100_000, env, *args, "--rate-limit", "2000/1s", error="disk I/O error")
    assert report["outcomes"]["delivered"] == 0 == sum(stored(sandbox).values())
    assert report["rows_read"] > 0 and report["outcomes"]["pending"] > 0
    assert _dead_lettered(out) == report["outcomes"]["invalid"] + report["outcomes"]["failed"]
