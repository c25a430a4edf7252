"""Bench: K delivery processes sharing one API key's rate budget through one PostgreSQL state.

    uv run python bench/cluster.py [--k 1 2 4] [--rows 2400] [--limit 300/10s] [--latency 300,3000]

For each K: a fresh sandbox (the key's limit, log-normal latency with the given median and p99,
storing exact repeats so a duplicate shows), a fresh PostgreSQL schema in a throw-away cluster,
and K ``lms-sync run`` processes started together, each on its own slice of one export. Prints
per K: goodput = (201 + 409 answers) / (last send - first send) and its share of the limit, the
429 count, the busiest window of the sandbox's request log, and duplicates stored.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.core.rate_limit import parse_rate_limit
from pipelines.sandbox import SandboxConfig, parse_latency, start_sandbox
from tests.conftest import SANDBOX_ACCOUNT, SANDBOX_KEY, max_requests_in_window
from tests.pipelines.run.test_delivery import write_export
from tests.postgres_server import running_postgres

LMS_SYNC = Path(sys.executable).with_name("lms-sync")


def slices(export: Path, k: int, folder: Path) -> list[Path]:
    """The export's rows dealt into ``k`` files (row i to file i mod k), each with the header."""
    header, *rows = export.read_text(encoding="utf-8").splitlines(keepends=True)
    paths = []
    for part in range(k):
        path = folder / f"part-{part}.csv"
        path.write_text(header + "".join(rows[part::k]), encoding="utf-8")
        paths.append(path)
    return paths


def start(
    part: Path, mapping: Path, out: Path, env: dict[str, str], args: argparse.Namespace
) -> subprocess.Popen[bytes]:
    """One delivering ``lms-sync run`` of ``part`` in a child process."""
    command = [str(LMS_SYNC), "run", str(part), "-m", str(mapping), "--quiet", "--out", str(out),
               "--rate-limit", args.limit, "--concurrency", str(args.concurrency)]  # fmt: skip
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)


def one_k(k: int, args: argparse.Namespace, postgres: str, folder: Path) -> dict[str, object]:
    """K processes against a fresh sandbox and state; the figures of the sandbox's log."""
    limit, window = parse_rate_limit(args.limit)
    schema = f"cluster_{k}_{int(time.time())}"
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    state = f"{postgres}?options={quote(f'-csearch_path={schema}')}"
    config = SandboxConfig(
        rate_limit=(limit, window), latency=parse_latency(args.latency), store_repeats=True
    )
    with start_sandbox(config) as sandbox:
        export, mapping = write_export(folder / f"k{k}", args.rows)
        env = {
            **{n: v for n, v in os.environ.items() if not n.startswith(("LMS_SYNC_", "STACKONE_"))},
            "STACKONE_API_KEY": SANDBOX_KEY,
            "STACKONE_ACCOUNT_ID": SANDBOX_ACCOUNT,
            "STACKONE_BASE_URL": sandbox.base_url,
            "LMS_SYNC_STATE_URL": state,
            "PREFECT_API_URL": "",
        }
        runs = [start(part, mapping, folder / f"k{k}" / part.stem, env, args) for part in
                slices(export, k, folder / f"k{k}")]  # fmt: skip
        codes = [run.wait() for run in runs]
        time.sleep(args.latency_tail)
        log = sandbox.request_log()
        posts = [e for e in log if e["method"] == "POST"]
        answered = [e for e in posts if e["status"] in (201, 409)]
        span = max(e["time"] for e in posts) - min(e["time"] for e in posts)
        repeats = Counter(
            (c["user_id"], json.dumps(c["body"], sort_keys=True)) for c in sandbox.completions()
        )
    goodput = len(answered) / span if span else 0.0
    return {
        "k": k,
        "exit_codes": codes,
        "requests": len(log),
        "goodput_per_s": round(goodput, 2),
        "share_of_limit": round(goodput / (limit / window), 3),
        "windows": round(span / window, 1),
        "status_429": sum(1 for e in log if e["status"] == 429),
        "busiest_window": max_requests_in_window(log, window),
        "duplicates": sum(n - 1 for n in repeats.values()),
    }


def main() -> None:
    """Run the bench for each K and print one JSON line per K."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--rows", type=int, default=2400)
    parser.add_argument("--limit", default="300/10s")
    parser.add_argument("--latency", default="300,3000")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency-tail", type=float, default=4.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    with running_postgres() as postgres, tempfile.TemporaryDirectory() as folder:
        os.environ["LMS_SYNC_BUDGET_DIR"] = folder  # unused with PostgreSQL; kept apart anyway
        for k in args.k:
            print(json.dumps(one_k(k, args, postgres, Path(folder))), flush=True)


if __name__ == "__main__":
    main()
