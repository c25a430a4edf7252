"""Bench: deliver an export to the sandbox at its rate limit, as a user would, and measure goodput.

    uv run python bench/delivery.py [--rows 3000] [--rate-limit 300/10s] [--latency-ms 300,3000]
                                    [--concurrency 128]

Starts ``lms-sync sandbox`` (limit N/S, log-normal latency) as a separate process on a free port,
writes an export of distinct valid rows and its mapping under bench/out/, runs
``lms-sync run … --rate-limit N/Ss`` against it with a fresh ledger, then reads the sandbox's
request log and stored completions. Targets (issue 3 item 8): steady-state goodput ≥ 0.97 of the
limit, ≤ 1 % of requests answered 429, every row stored exactly once.

Goodput is measured three ways, all from server arrival times (the log has no answer times):

- steady state: S divided by the mean time between the i-th and the (i+N)-th 201 arrival, i.e.
  how soon a slot of the server's window is used again (1.0 = every slot reused the moment it
  frees; independent of how bursty the pattern inside a window is);
- pace: the earliest the R-th success could arrive under the limit (request i no sooner than
  t0 + ⌊i/N⌋·S) divided by when it did, both measured from the first arrival;
- end to end: delivered rows per second of the CLI's wall time (start-up, the free first window
  and the last answers' latency included) over N/S; above 1 for small row counts, as the first
  window is free.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
CLI = ROOT / ".venv" / "bin" / "lms-sync"
API_KEY, ACCOUNT = "sandbox-key", "sandbox-account"
MAPPING = """\
version: 1
source: {format: csv, timezone: UTC}
user: {column: user_id}
fields:
  learning_object_external_reference: {column: course_code}
  completed_at: {column: completed_at}
  time_spent: {column: minutes, unit: minutes}
  result: {column: status, map: {Passed: Pass, Failed: Fail}}
  score: {column: score}
"""
TARGET_GOODPUT, TARGET_429 = 0.97, 0.01


def parse_rate(text: str) -> tuple[int, float]:
    """``300/10s`` → (300, 10.0); seconds only, as the bench passes the text on unchanged."""
    count, _, period = text.partition("/")
    return int(count), float(period.removesuffix("s"))


def generate(rows: int, folder: Path) -> tuple[Path, Path]:
    """An export of ``rows`` valid rows with distinct keys (distinct course per row), and its mapping."""
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, mapping_path = folder / f"delivery_{rows}.csv", folder / "delivery_mapping.yaml"
    mapping_path.write_text(MAPPING)
    if csv_path.exists():
        return csv_path, mapping_path
    rng = np.random.default_rng(11)
    base = np.datetime64("2024-01-01T00:00:00", "s")
    stamps = np.datetime_as_string(base + rng.integers(0, 300 * 86_400, rows), unit="s")
    lines = ["user_id,course_code,completed_at,minutes,status,score"]
    for i in range(rows):
        status = "Failed" if i % 7 == 0 else "Passed"
        score = int(rng.integers(0, 101))
        lines.append(
            f"u{i % 500:04d},COURSE-{i:07d},{stamps[i]}Z,{int(rng.integers(1, 600))},{status},{score}"
        )
    csv_path.write_text("\n".join(lines) + "\n")
    return csv_path, mapping_path


def free_port() -> int:
    """A port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_sandbox(port: int, rate: str, latency: str, log: Path) -> subprocess.Popen[bytes]:
    """``lms-sync sandbox`` in its own process; returns once it answers (or raises)."""
    command = [str(CLI), "sandbox", "--port", str(port), "--rate-limit", rate]
    command += ["--latency-ms", latency]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sandbox exited with {process.returncode}; see {log}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/sandbox/requests", timeout=1).raise_for_status()
            return process
        except httpx.HTTPError:
            time.sleep(0.1)
    stop_sandbox(process)
    raise RuntimeError(f"sandbox did not answer on port {port} within 30 s; see {log}")


def stop_sandbox(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the sandbox we started (by its pid), SIGKILL it if it does not stop."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def deliver(
    csv_path: Path, mapping: Path, rate: str, concurrency: int, port: int, tag: str
) -> tuple[dict[str, Any], float, float, int]:
    """Run ``lms-sync run`` with a fresh ledger; (report.json, wall s, its CPU s, exit code)."""
    ledger, out = OUT / f"delivery-{tag}-ledger.sqlite", OUT / f"delivery-{tag}-run"
    for old in OUT.glob(ledger.name + "*"):
        old.unlink()
    command = [str(CLI), "run", str(csv_path), "-m", str(mapping), "--rate-limit", rate]
    command += ["--concurrency", str(concurrency), "--ledger", str(ledger), "--out", str(out)]
    command += ["--json"]
    env = {
        **os.environ,
        "STACKONE_API_KEY": API_KEY,
        "STACKONE_ACCOUNT_ID": ACCOUNT,
        "STACKONE_BASE_URL": f"http://127.0.0.1:{port}",
    }
    env.pop("PREFECT_API_URL", None)  # the plain path: no Prefect server start-up in the timing
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    (OUT / "delivery-cli.log").write_bytes(done.stderr)
    if done.returncode not in (0, 1):
        sys.stderr.write(done.stderr.decode(errors="replace"))
        raise RuntimeError(f"lms-sync run exited with {done.returncode}")
    return json.loads(done.stdout), wall, cpu, done.returncode


def max_in_window(times: list[float], period: float) -> int:
    """Most arrivals in any half-open ``period``-second window (a window starts at an arrival)."""
    best = 0
    for i, start in enumerate(times):
        best = max(best, bisect.bisect_left(times, start + period) - i)
    return best


def measure(
    log: list[dict[str, Any]], stored: list[dict[str, Any]], rows: int, limit: int, period: float
) -> dict[str, Any]:
    """Goodput, 429 share, busiest window and exactly-once check from the sandbox's records."""
    api = sorted((e for e in log if e["key"] is not None), key=lambda e: e["time"])
    times = [e["time"] for e in api]
    ok = [e["time"] for e in api if e["status"] == 201]
    t0 = times[0]
    statuses = Counter(e["status"] for e in api)
    cycles = [later - earlier for earlier, later in zip(ok, ok[limit:], strict=False)]
    ideal_last = ((len(ok) - 1) // limit) * period
    refs = Counter(row["body"]["learning_object_external_reference"] for row in stored)
    return {
        "requests": len(api),
        "status": dict(sorted(statuses.items())),
        "share_429": statuses[429] / len(api),
        "max_in_window": max_in_window(times, period),
        "max_201_in_window": max_in_window(ok, period),
        "arrival_span_s": ok[-1] - t0,
        "slot_cycles": len(cycles),
        "steady_goodput": period / (sum(cycles) / len(cycles)) if cycles else float("nan"),
        "pace_goodput": ideal_last / (ok[-1] - t0) if ok[-1] > t0 else float("nan"),
        "stored": len(stored),
        "stored_distinct": len(refs),
        "exactly_once": len(stored) == rows and len(refs) == rows and max(refs.values()) == 1,
    }


def main() -> None:
    """Run the bench once (or ``--repeat`` times) and print the figures and the verdict."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--rate-limit", default="300/10s", help="N/Ss, client and sandbox alike")
    parser.add_argument("--latency-ms", default="300,3000", help="sandbox median,p99 in ms")
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    limit, period = parse_rate(args.rate_limit)
    csv_path, mapping = generate(args.rows, OUT)
    verdicts = []
    for round_ in range(1, args.repeat + 1):
        port = free_port()
        sandbox = start_sandbox(
            port, args.rate_limit, args.latency_ms, OUT / "delivery-sandbox.log"
        )
        try:
            report, wall, cpu, code = deliver(
                csv_path, mapping, args.rate_limit, args.concurrency, port, "bench"
            )
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as control:
                log = control.get("/sandbox/requests").json()["data"]
                stored = control.get("/sandbox/completions").json()["data"]
        finally:
            stop_sandbox(sandbox)
        (OUT / f"delivery-requests-{round_}.json").write_text(json.dumps(log))
        m = measure(log, stored, args.rows, limit, period)
        delivered = report["outcomes"]["delivered"]
        end_to_end = delivered / wall / (limit / period)
        met = (
            m["steady_goodput"] >= TARGET_GOODPUT
            and m["share_429"] <= TARGET_429
            and m["exactly_once"]
            and delivered == args.rows
        )
        verdicts.append(met)
        print(
            f"round {round_}: {args.rows} rows, limit {args.rate_limit}, latency "
            f"{args.latency_ms} ms, concurrency {args.concurrency} (exit {code})\n"
            f"  delivered        {delivered} rows in {wall:.1f} s wall, {cpu:.1f} s CPU of "
            f"lms-sync (outcomes {report['outcomes']})\n"
            f"  goodput          steady {m['steady_goodput']:.3f} of the limit "
            f"({m['slot_cycles']} slot reuses) · pace {m['pace_goodput']:.3f} "
            f"(201s over {m['arrival_span_s']:.1f} s of arrivals) · end to end "
            f"{end_to_end:.3f}\n"
            f"  requests         {m['requests']} at the server {m['status']}; "
            f"429 share {m['share_429']:.2%}; client: sent {report['requests']['sent']}, "
            f"retries {report['requests']['retries']}, 429 {report['requests']['status_429']}\n"
            f"  busiest window   {m['max_in_window']} requests "
            f"({m['max_201_in_window']} answered 201) in any {period:g} s (limit {limit})\n"
            f"  stored           {m['stored']} completions, {m['stored_distinct']} distinct; "
            f"every row exactly once: {m['exactly_once']}\n"
            f"  targets          goodput ≥ {TARGET_GOODPUT}, 429 ≤ {TARGET_429:.0%}, "
            f"exactly once → {'MET' if met else 'NOT MET'}",
            flush=True,
        )
    sys.exit(0 if all(verdicts) else 1)


if __name__ == "__main__":
    main()
