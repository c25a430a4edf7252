"""The ``lms-sync`` command's entry point runs without pandas (pyarrow would load it for nothing)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "data" / "samples" / "workday_learning.csv"
MAPPING = ROOT / "config" / "mappings" / "workday_learning.yaml"
SCRIPT = """
import json, sys
from pipelines.cli.entry import main
sys.argv = ["lms-sync", *sys.argv[1:]]
try:
    main()
except SystemExit as stop:
    code = stop.code
try:
    import pandas  # noqa: F401
    blocked = False
except ModuleNotFoundError:
    blocked = True
print(json.dumps({"exit": code, "pandas_loaded": "pandas" in sys.modules, "blocked": blocked}))
"""


def test_a_dry_run_through_the_command_entry_never_loads_pandas(tmp_path: Path) -> None:
    """A whole dry run through the entry point: same outcome as ever, pandas never imported."""
    out = tmp_path / "dry"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, "run", str(SAMPLE), "-m", str(MAPPING), "--dry-run",
         "--out", str(out)],
        capture_output=True, text=True, check=True, cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "STACKONE_ACCOUNT_ID": "acct-entry", "HOME": str(tmp_path)},
    )  # fmt: skip
    verdict = json.loads(done.stdout.strip().splitlines()[-1])
    assert verdict == {"exit": 1, "pandas_loaded": False, "blocked": True}, done.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["outcomes"]["would_send"] == 10
    assert len((out / "payloads.jsonl").read_text().splitlines()) == 10
