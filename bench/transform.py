"""Benchmark of the dry run: bare pyarrow read vs lms-sync dry run vs a naive per-row loop.

    uv run python bench/transform.py [--rows 1000000] [--naive-rows 200000] [--memory-rows 3000000]

Generates an export (CSV and Parquet) under bench/out/, then times in one run: a bare pyarrow CSV
read (every column as text), the dry run end to end on the CSV and on the Parquet file (read →
convert → validate → payloads.jsonl + dead-letter + report), and a naive loop (pandas itertuples +
one pydantic model per row + isodate). Peak memory is measured in child processes for two file
sizes, to show whether it grows with the file. Targets (issue 2): dry run ≥ 1 M rows/s, ≥ 20x the
naive loop, ≥ 1/8 of the bare read.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
MAPPING = """\
version: 1
source: {timezone: America/New_York}
user: {column: user_id}
fields:
  learning_object_external_reference: {column: course_code}
  completed_at: {column: completed_at}
  time_spent: {column: minutes, unit: minutes}
  result: {column: status, map: {Passed: Pass, Completed: Pass, Failed: Fail}}
  score: {column: score}
  passthrough: {columns: [department]}
filters:
  - {column: status, in: [Passed, Completed, Failed]}
"""
COLUMNS = ["user_id", "course_code", "completed_at", "minutes", "status", "score", "department"]


def generate(rows: int, folder: Path) -> tuple[Path, Path]:
    """A realistic export: 50 k users, 3 k courses, distinct timestamps, some bad and repeated rows."""
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, parquet_path = folder / f"export_{rows}.csv", folder / f"export_{rows}.parquet"
    if csv_path.exists() and parquet_path.exists():
        return csv_path, parquet_path
    rng = np.random.default_rng(7)
    base = np.datetime64("2023-01-01T00:00:00", "s")
    seconds = rng.integers(0, 600 * 86_400, rows)
    stamps = np.datetime_as_string(base + seconds, unit="s").astype(object)
    stamps = np.char.replace(stamps.astype(str), "T", " ")
    minutes = rng.integers(1, 600, rows).astype(str).astype(object)
    minutes[rng.random(rows) < 0.01] = "-5"
    statuses = np.array(["Passed", "Completed", "Failed", "In Progress", "passed "])[
        rng.integers(0, 5, rows)
    ]
    table = pa.table(
        {
            "user_id": pa.array(np.char.add("u", rng.integers(0, 50_000, rows).astype(str))),
            "course_code": pa.array(
                np.char.add("COURSE-", rng.integers(0, 3_000, rows).astype(str))
            ),
            "completed_at": pa.array(stamps),
            "minutes": pa.array(minutes.astype(str)),
            "status": pa.array(statuses),
            "score": pa.array(rng.integers(0, 101, rows).astype(str)),
            "department": pa.array(
                np.array(["Sales", "Ops", "R&D", "HR"])[rng.integers(0, 4, rows)]
            ),
        }
    )
    pacsv.write_csv(table, csv_path)
    pq.write_table(table, parquet_path, row_group_size=131_072)
    return csv_path, parquet_path


def bare_read(path: Path) -> float:
    """Seconds for pyarrow to read the CSV with every column as text."""
    start = time.perf_counter()
    pacsv.read_csv(
        path, convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(COLUMNS, pa.string()))
    )
    return time.perf_counter() - start


def dry_run_seconds(path: Path, out: Path) -> tuple[float, dict[str, object]]:
    """Seconds for the lms-sync dry run (plain-function mode, as the CLI runs it)."""
    from pipelines.run.dryrun import dry_run
    from pipelines.run.plan import plan_run
    from transforms.mapping import parse_mapping

    start = time.perf_counter()
    plan = plan_run([str(path)], parse_mapping(MAPPING, {}), "bench-account")
    report = dry_run(plan, out=out, target="https://api.stackone.com")
    return time.perf_counter() - start, report.as_dict()


def naive_seconds(path: Path, rows: int) -> float:
    """Seconds for the obvious implementation: itertuples + a pydantic model per row + isodate."""
    import hashlib
    from zoneinfo import ZoneInfo

    import isodate
    import orjson
    import pandas as pd

    from transforms.dto import CompletionRequest

    zone = ZoneInfo("America/New_York")
    start = time.perf_counter()
    frame = pd.read_csv(path, dtype=str, nrows=rows, keep_default_na=False)
    statuses = {"passed": "Pass", "completed": "Pass", "failed": "Fail"}
    with open(OUT / "naive.jsonl", "wb") as sink:
        for row in frame.itertuples(index=False):
            if row.status.strip().lower() not in statuses:
                continue
            try:
                minutes = float(row.minutes)
                if minutes < 0:
                    continue
                when = datetime.fromisoformat(row.completed_at).replace(tzinfo=zone).astimezone(UTC)
                model = CompletionRequest(
                    learning_object_external_reference=row.course_code,
                    completed_at=when.strftime("%Y-%m-%dT%H:%M:%S.")
                    + f"{when.microsecond // 1000:03d}Z",
                    time_spent=isodate.duration_isoformat(isodate.parse_duration(f"PT{minutes}M")),
                    result={
                        "value": statuses[row.status.strip().lower()],
                        "source_value": row.status,
                    },
                    score={"percentage": float(row.score), "raw_value": row.score},
                    passthrough={"department": row.department},
                )
            except ValueError:
                continue
            body = model.model_dump(mode="json", exclude_none=True)
            key = hashlib.blake2b(
                "\x1f".join(["acct", row.user_id, row.course_code, body["completed_at"]]).encode(),
                digest_size=16,
            ).hexdigest()
            sink.write(orjson.dumps({"user_id": row.user_id, "body": body, "key": key}) + b"\n")
    return time.perf_counter() - start


def peak_memory_mb(rows: int) -> float:
    """Peak RSS (MB) of a child process doing one dry run of a ``rows``-row CSV."""
    code = (
        "import sys, resource; sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[1] + '/bench');"
        "import transform as t; from pathlib import Path;"
        "csv, _ = t.generate(int(sys.argv[2]), t.OUT);"
        "t.dry_run_seconds(csv, t.OUT / 'mem_run');"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(ROOT), str(rows)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    """Run the benchmark and print rows/s, ratios and peak memory."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--naive-rows", type=int, default=200_000)
    parser.add_argument(
        "--memory-rows", type=int, default=3_000_000, help="0 skips the memory check"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))

    csv_path, parquet_path = generate(args.rows, OUT)
    dry_run_seconds(csv_path, OUT / "warmup")  # JIT caches, imports
    read_s = min(bare_read(csv_path) for _ in range(3))
    csv_s, report = dry_run_seconds(csv_path, OUT / "run_csv")
    parquet_s, _ = dry_run_seconds(parquet_path, OUT / "run_parquet")
    naive_s = naive_seconds(csv_path, args.naive_rows)

    rows = args.rows
    read_rate, csv_rate = rows / read_s, rows / csv_s
    naive_rate = args.naive_rows / naive_s
    print(f"rows: {rows:,}  outcomes: {json.dumps(report['outcomes'])}")
    print(f"bare pyarrow CSV read : {read_s:7.3f} s  {read_rate:13,.0f} rows/s")
    print(f"dry run (CSV)         : {csv_s:7.3f} s  {csv_rate:13,.0f} rows/s")
    print(f"dry run (Parquet)     : {parquet_s:7.3f} s  {rows / parquet_s:13,.0f} rows/s")
    print(f"naive loop ({args.naive_rows:,} rows): {naive_s:7.3f} s  {naive_rate:13,.0f} rows/s")
    print(f"dry run / naive       : {csv_rate / naive_rate:7.1f}x   (target >= 20x)")
    print(f"dry run / bare read   : {csv_rate / read_rate:7.3f}    (target >= 0.125)")
    print(f"target 1 M rows/s     : {'met' if csv_rate >= 1_000_000 else 'NOT met'}")
    if args.memory_rows:
        small, large = peak_memory_mb(args.rows), peak_memory_mb(args.memory_rows)
        print(
            f"peak RSS: {small:,.0f} MB at {args.rows:,} rows, {large:,.0f} MB at {args.memory_rows:,} rows"
        )
    print(
        f"this process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB"
    )


if __name__ == "__main__":
    main()
