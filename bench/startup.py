"""Start-up benchmark: an ad hoc dry run of a small sample, as a new process, without Prefect.

    uv run python bench/startup.py [--runs 5]

Target (issue 2): ≤ 5 s from command to exit when no Prefect server is configured.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 5.0


def main() -> None:
    """Time ``lms-sync run SAMPLE --dry-run`` in fresh processes and print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    command = [
        str(Path(sys.executable).with_name("lms-sync")),
        "run",
        str(ROOT / "data/samples/workday_learning.csv"),
        "-m",
        str(ROOT / "config/mappings/workday_learning.yaml"),
        "--dry-run",
        "--quiet",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env["STACKONE_ACCOUNT_ID"] = "bench-account"
    times = []
    with tempfile.TemporaryDirectory() as folder:
        for run in range(args.runs):
            start = time.perf_counter()
            done = subprocess.run([*command, "--out", f"{folder}/{run}"], env=env, check=False)
            times.append(time.perf_counter() - start)
            if done.returncode not in (0, 1):
                raise SystemExit(f"run failed with exit code {done.returncode}")
    times.sort()
    median = times[len(times) // 2]
    print(f"ad hoc dry run of a 20-row sample: median {median:.2f} s, max {times[-1]:.2f} s")
    print(
        f"target <= {TARGET_SECONDS:.0f} s: {'met' if times[-1] <= TARGET_SECONDS else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
