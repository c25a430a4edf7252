"""Benchmark of the dry run on real-shaped exports: bare pyarrow read vs lms-sync vs a naive loop.

    uv run python bench/transform.py [--rows 1000000] [--repeat 3] [--no-10m]

Generates (once, under bench/out/) a CSV and a Parquet export shaped like a real one: every row a
distinct learner and course, a ``completed_at`` of ``YYYY-MM-DD HH:MM:SS`` wall times, minutes,
status, score and a department, with a few bad and repeated rows. Then prints, side by side, the
medians of ``--repeat`` runs of: a bare ``pyarrow.csv.read_csv`` (every column as text), the dry
run in-process after imports and the key kernel's load (read → map → convert → validate → key → payloads.jsonl + dead-letter
+ report, all written) with ``completed_at`` read as ISO and with the strptime ``format``, the same
on the Parquet file, the ``lms-sync run --dry-run`` command's wall time, and a naive loop (pandas
itertuples + one pydantic model per row). Peak RSS of the ``lms-sync run --dry-run`` command at
``--rows`` rows, and at 10 M rows (``--no-10m`` skips it). Targets (issue 12): ≥ 1 M rows/s for ISO and
strptime, ≥ 1/8 of the bare read; peak RSS < 400 MB at 10 M rows, ≤ 200 MB above the 1 M figure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pipelines  # noqa: F401  (first: sets the allocator up before pyarrow loads, as the CLI does)

# isort: split
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
COLUMNS = ["user_id", "course_code", "completed_at", "minutes", "status", "score", "department"]
MAPPING = """\
version: 1
source: {{timezone: America/New_York}}
user: {{column: user_id}}
fields:
  learning_object_external_reference: {{column: course_code}}
  completed_at: {{column: completed_at{format}}}
  time_spent: {{column: minutes, unit: minutes}}
  result: {{column: status, map: {{Passed: Pass, Completed: Pass, Failed: Fail}}}}
  score: {{column: score}}
  passthrough: {{columns: [department]}}
filters:
  - {{column: status, in: [Passed, Completed, Failed]}}
"""
SHAPES = {
    "iso": MAPPING.format(format=""),
    "strptime": MAPPING.format(format=', format: "%Y-%m-%d %H:%M:%S"'),
}
GENERATE_BLOCK = 1_000_000


def _text(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """``prefix`` + zero-padded decimal text of every number (Arrow kernels, no Python loop)."""
    digits = pc.utf8_lpad(pc.cast(pa.array(numbers), pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _block(rows: int, start: int, rng: np.random.Generator, ids: np.ndarray) -> pa.Table:
    """``rows`` records from ``start``: ids[start:] are distinct; 0.5 % repeat an earlier record."""
    base = np.datetime64("2023-01-01T00:00:00", "s")
    stamps = (base + rng.integers(0, 600 * 86_400, rows)).astype("datetime64[s]")
    completed = pc.strftime(pa.array(stamps), format="%Y-%m-%d %H:%M:%S")
    bad_stamp = rng.random(rows) < 0.001
    completed = pc.if_else(pa.array(bad_stamp), "2023-13-45 25:00:00", completed)
    minutes = pc.cast(pa.array(rng.integers(1, 600, rows)), pa.string())
    minutes = pc.if_else(pa.array(rng.random(rows) < 0.01), "-5", minutes)
    half = pc.binary_join_element_wise(minutes, ".5", "")
    minutes = pc.if_else(pa.array(rng.random(rows) < 0.05), half, minutes)
    statuses = np.array(["Passed", "Completed", "Failed", "In Progress", "passed "])
    scores = pc.cast(pa.array(rng.integers(0, 101, rows)), pa.string())
    scores = pc.if_else(pa.array(rng.random(rows) < 0.02), "", scores)
    own = ids[start : start + rows]
    return pa.table(
        {
            "user_id": _text("L", own, 8),
            "course_code": _text("CRS-", (own * 7_919) % len(ids), 7),
            "completed_at": completed,
            "minutes": minutes,
            "status": pa.array(statuses[rng.integers(0, 5, rows)]),
            "score": scores,
            "department": pa.array(
                np.array(["Sales", "Ops", "R&D", "HR"])[rng.integers(0, 4, rows)]
            ),
        }
    )


def generate(rows: int, folder: Path = OUT) -> tuple[Path, Path]:
    """A real-shaped export of ``rows`` records as CSV and Parquet (made once, then reused)."""
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, parquet_path = folder / f"real_{rows}.csv", folder / f"real_{rows}.parquet"
    if csv_path.exists() and parquet_path.exists():
        return csv_path, parquet_path
    rng = np.random.default_rng(12)
    ids = rng.permutation(rows)
    schema = pa.schema([(name, pa.string()) for name in COLUMNS])
    csv_tmp, parquet_tmp = folder / f"real_{rows}.csv.tmp", folder / f"real_{rows}.parquet.tmp"
    with (
        pacsv.CSVWriter(csv_tmp, schema) as csv_out,
        pq.ParquetWriter(parquet_tmp, schema) as parquet_out,
    ):
        for start in range(0, rows, GENERATE_BLOCK):
            block = _block(min(GENERATE_BLOCK, rows - start), start, rng, ids)
            repeat = np.flatnonzero(rng.random(block.num_rows) < 0.005)
            repeat = repeat[repeat > 0]
            take = np.arange(block.num_rows)
            take[repeat] = rng.integers(0, repeat)  # an earlier record, whole
            block = block.take(pa.array(take))
            csv_out.write_table(block)
            parquet_out.write_table(block, row_group_size=131_072)
    csv_tmp.rename(csv_path)
    parquet_tmp.rename(parquet_path)
    return csv_path, parquet_path


def mapping_file(shape: str) -> Path:
    """The mapping of ``shape`` (iso | strptime) written to bench/out/."""
    path = OUT / f"mapping_{shape}.yaml"
    path.write_text(SHAPES[shape])
    return path


def bare_read(path: Path) -> float:
    """Seconds for pyarrow to read the CSV with every column as text."""
    start = time.perf_counter()
    pacsv.read_csv(
        path, convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(COLUMNS, pa.string()))
    )
    return time.perf_counter() - start


def dry_run_seconds(path: Path, shape: str, out: Path) -> tuple[float, dict[str, object]]:
    """Seconds for the lms-sync dry run (plain-function mode, as the CLI runs it), and its report."""
    from pipelines.run.dryrun import dry_run
    from pipelines.run.plan import plan_run
    from transforms.mapping import parse_mapping

    shutil.rmtree(out, ignore_errors=True)  # a run writes a new folder, not over an old one
    start = time.perf_counter()
    plan = plan_run([str(path)], parse_mapping(SHAPES[shape], {}), "bench-account")
    report = dry_run(plan, out=out, target="https://api.stackone.com")
    return time.perf_counter() - start, report.as_dict()


def cli_seconds(path: Path, shape: str, out: Path, bytecode: bool) -> float:
    """Wall seconds of ``lms-sync run --dry-run`` as a user runs it (a fresh process); with
    ``bytecode``, modules come from a bytecode cache under bench/out/ (as on most machines),
    else as this environment says (PYTHONDONTWRITEBYTECODE makes every import compile)."""
    command = [str(Path(sys.executable).with_name("lms-sync")), "run", str(path)]
    command += ["-m", str(mapping_file(shape)), "--dry-run", "--out", str(out), "-q"]
    env = {**os.environ, "STACKONE_ACCOUNT_ID": "bench-account"}
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(OUT / "pycache")
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):  # 1: rows dead-lettered, as planned
        raise SystemExit(f"lms-sync failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds


def naive_seconds(path: Path, rows: int) -> float:
    """Seconds for the obvious implementation: itertuples + a pydantic model per row + isodate."""
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
                when = datetime.strptime(row.completed_at, "%Y-%m-%d %H:%M:%S")
                when = when.replace(tzinfo=zone).astimezone(UTC)
                model = CompletionRequest(
                    learning_object_external_reference=row.course_code,
                    completed_at=when.strftime("%Y-%m-%dT%H:%M:%S.")
                    + f"{when.microsecond // 1000:03d}Z",
                    time_spent=isodate.duration_isoformat(isodate.parse_duration(f"PT{minutes}M")),
                    result={
                        "value": statuses[row.status.strip().lower()],
                        "source_value": row.status,
                    },
                    score={"percentage": float(row.score), "raw_value": row.score}
                    if row.score
                    else None,
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


def peak_memory_mb(rows: int, shape: str = "strptime") -> float:
    """Peak RSS (MB) of ``lms-sync run --dry-run`` over a ``rows``-row CSV, as a user runs it
    (measured by a fresh parent process, so that no other child counts)."""
    csv_path, _ = generate(rows)
    out = OUT / "mem_run"
    shutil.rmtree(out, ignore_errors=True)
    command = [str(Path(sys.executable).with_name("lms-sync")), "run", str(csv_path)]
    command += ["-m", str(mapping_file(shape)), "--dry-run", "--out", str(out), "-q"]
    code = (
        "import resource, subprocess, sys;"
        "done = subprocess.run(sys.argv[1:], capture_output=True);"
        "assert done.returncode in (0, 1), done.stderr[-2000:];"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)"
    )
    env = {**os.environ, "STACKONE_ACCOUNT_ID": "bench-account"}
    done = subprocess.run(
        [sys.executable, "-c", code, *command], env=env, capture_output=True, text=True, check=True
    )
    return float(done.stdout.strip().splitlines()[-1])


def median_of(repeat: int, run: Callable[[], float]) -> tuple[float, list[float]]:
    """The median and all of ``repeat`` timings."""
    times = [run() for _ in range(repeat)]
    return statistics.median(times), times


def sha256(path: Path) -> str:
    """Hex sha256 of a file (payloads.jsonl must stay byte-identical across changes)."""
    return hashlib.file_digest(path.open("rb"), "sha256").hexdigest()


def dry_run_rates(
    csv_path: Path, parquet_path: Path, rows: int, repeat: int, read_rate: float
) -> dict[str, float]:
    """Print and return the in-process dry-run rates (ISO, strptime, Parquet)."""
    rates = {}
    for label, path, shape in (
        ("dry run CSV, ISO", csv_path, "iso"),
        ("dry run CSV, strptime", csv_path, "strptime"),
        ("dry run Parquet, ISO", parquet_path, "iso"),
    ):
        out = OUT / f"run_{shape}_{path.suffix[1:]}"
        runs = [dry_run_seconds(path, shape, out) for _ in range(repeat)]
        times = [seconds for seconds, _ in runs]
        seconds = statistics.median(times)
        rates[label] = rows / seconds
        ratio = f"{rates[label] / read_rate:6.3f} of read" if path.suffix == ".csv" else " " * 14
        print(f"{label:27}: {seconds:7.3f} s {rates[label]:12,.0f} rows/s  {ratio}  {_all(times)}")
        print(
            f"  outcomes {json.dumps(runs[-1][1]['outcomes'])}  payloads.jsonl sha256 "
            f"{sha256(out / 'payloads.jsonl')[:16]}"
        )
    return rates


def cli_figures(csv_path: Path, rows: int, repeat: int) -> None:
    """Print the wall time of ``lms-sync run --dry-run`` (a fresh process each time)."""
    cli_seconds(csv_path, "iso", OUT / "cli_warm", bytecode=True)  # fills the bytecode cache
    for shape, bytecode in (("iso", False), ("strptime", False), ("iso", True), ("strptime", True)):
        out = OUT / f"cli_{shape}"
        times = [cli_seconds(csv_path, shape, out, bytecode) for _ in range(repeat)]
        seconds = statistics.median(times)
        label = f"lms-sync run --dry-run {shape}{', .pyc cached' if bytecode else ''}"
        print(f"{label:37}: {seconds:6.2f} s wall {rows / seconds:12,.0f} rows/s  {_all(times)}")


def main() -> None:
    """Run the benchmark and print rows/s, ratios and peak memory."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median shown)")
    parser.add_argument("--naive-rows", type=int, default=200_000, help="0 skips the naive loop")
    parser.add_argument("--no-cli", action="store_true", help="skip the lms-sync command")
    parser.add_argument("--no-memory", action="store_true", help="skip the child-process RSS")
    parser.add_argument("--no-10m", action="store_true", help="skip the peak RSS at 10 M rows")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))

    rows = args.rows
    csv_path, parquet_path = generate(rows)
    from transforms.keys import warm_kernel

    warm_kernel()  # in-process figures are after imports, the key kernel's included
    dry_run_seconds(csv_path, "strptime", OUT / "warmup")  # JIT caches, imports
    read_s, read_all = median_of(args.repeat, lambda: bare_read(csv_path))
    read_rate = rows / read_s
    print(f"rows: {rows:,}  ({csv_path.stat().st_size / 1e6:.0f} MB CSV), medians of {args.repeat}")
    print(
        f"bare pyarrow CSV read      : {read_s:7.3f} s {read_rate:12,.0f} rows/s  {_all(read_all)}"
    )
    rates = dry_run_rates(csv_path, parquet_path, rows, args.repeat, read_rate)
    if not args.no_cli:
        cli_figures(csv_path, rows, args.repeat)
    if args.naive_rows:
        naive_rate = args.naive_rows / naive_seconds(csv_path, args.naive_rows)
        print(
            f"naive loop ({args.naive_rows:,} rows)  : {naive_rate:12,.0f} rows/s  "
            f"dry run (strptime) / naive = {rates['dry run CSV, strptime'] / naive_rate:.1f}x"
        )
    for label in ("dry run CSV, ISO", "dry run CSV, strptime"):
        met = rates[label] >= 1_000_000 and rates[label] >= read_rate / 8
        print(f"target ({label}) >= 1 M rows/s and >= 1/8 of read: {'met' if met else 'NOT met'}")
    if not args.no_memory:
        small = peak_memory_mb(rows)
        print(f"lms-sync run --dry-run peak RSS (strptime): {small:,.0f} MB at {rows:,} rows")
        if not args.no_10m:
            large = peak_memory_mb(10_000_000)
            met = large < 400 and large - small <= 200
            print(
                f"lms-sync run --dry-run peak RSS (strptime): {large:,.0f} MB at 10,000,000 rows "
                f"(+{large - small:,.0f} MB)"
            )
            print(f"target < 400 MB at 10 M rows and <= +200 MB: {'met' if met else 'NOT met'}")


def _all(times: list[float]) -> str:
    return "[" + " ".join(f"{t:.2f}" for t in times) + "]"


if __name__ == "__main__":
    main()
