"""A disk that fills up during a dry run (payloads.jsonl written on its own thread): the run ends
as crashed with the write's error, the dead-letter file is still closed and readable, and the
counts add up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from tests.pipelines.run.test_delivery import assert_balanced, read_report, write_export

# The child may write files of at most this many bytes (RLIMIT_FSIZE): payloads.jsonl of the
# export would be ~40 MB (~19 MB a chunk); the dead-letter files and report.json stay below it.
_FILE_LIMIT = 5_000_000

_CHILD = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
from pipelines.cli.entry import main
sys.argv = ["lms-sync", *sys.argv[1:]]
main()
"""


def test_a_full_disk_ends_the_dry_run_as_crashed_with_its_files_closed(tmp_path: Path) -> None:
    export, mapping = write_export(tmp_path / "in", 140_000)  # three chunks
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LMS_SYNC_")}
    env.update({"STACKONE_ACCOUNT_ID": "acct-1", "PREFECT_API_URL": ""})
    args = ["run", str(export), "-m", str(mapping), "--dry-run", "--out", str(out), "--quiet"]
    done = subprocess.run(
        [sys.executable, "-c", _CHILD.format(limit=_FILE_LIMIT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 3, done.stdout + done.stderr
    report = read_report(out)
    assert report["status"] == "crashed"
    assert "File too large" in report["aborted"]
    assert_balanced(report)
    assert report["outcomes"]["pending"] > 0  # rows read but never settled
    dead = pq.read_table(out / "deadletter.parquet")  # closed: its footer is there
    assert dead.num_rows == report["outcomes"]["invalid"] > 0
    assert (out / "payloads.jsonl").stat().st_size <= _FILE_LIMIT
