"""The nightly delta end to end: ``lms-sync nightly`` on a 10 M-row export whose keys the SQLite
state mostly holds already, against the sandbox, timed from the child process's start.

The state is built from the export itself: its rows go through the pipeline's own read → check
(``check_chunk``) and in-run repeat rules, and every deliverable key with the BLAKE2b-128 of its
body is written ``delivered``, except ``new`` of them spread evenly through the file. So the real
job finds exactly those ``new`` rows to send. The built state is cached under bench/out/ and
copied for each timed run (a run writes to it); the copy gets the sandbox's base URL as target.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow.compute as pc

from pipelines.run.checked_ahead import DEFAULT_AHEAD, checked_ahead
from pipelines.run.chunks import check_chunk, iter_chunks
from pipelines.run.plan import plan_run
from pipelines.run.repeats import RepeatTracker
from pipelines.sandbox import SandboxConfig, start_sandbox
from pipelines.sandbox.config import DEFAULT_ACCOUNT_ID, DEFAULT_API_KEY
from pipelines.state.key_bytes import as_16_bytes
from pipelines.state.ledger import Ledger
from pipelines.state.ledger_schema import normalise_target
from transforms.keys import blake2b_128_hex
from transforms.mapping import parse_mapping
from transforms.validation import VALID

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
LMS_SYNC = Path(sys.executable).with_name("lms-sync")
BUILD_TARGET = "http://bench-build.invalid"  # renamed to the sandbox's URL in each run's copy


def delta_mapping() -> Path:
    """bench/transform.py's strptime mapping without its status filter: every valid row is
    deliverable (an ``In Progress`` status is ``unmapped_value``), as in a nightly full export."""
    sys.path.insert(0, str(ROOT / "bench"))
    from transform import SHAPES

    text = SHAPES["strptime"].split("filters:")[0]
    path = OUT / "mapping_delta.yaml"
    path.write_text(text)
    return path


def deliverable_keys(
    csv_path: Path, mapping: Path
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8], int]:
    """16-byte keys and body hashes of the rows a delivering run would classify (valid, first of
    their key), in file order, computed by the pipeline's own check; and the rows read."""
    plan = plan_run([str(csv_path)], parse_mapping(mapping.read_text(), {}), DEFAULT_ACCOUNT_ID)
    tracker = RepeatTracker(plan.spec.repeats)
    now = datetime.now(UTC)
    keys, hashes, rows = [], [], 0
    pairs = checked_ahead(iter_chunks(plan), lambda c: check_chunk(c, plan, now), DEFAULT_AHEAD)
    for chunk, checked in pairs:
        rows += chunk.batch.table.num_rows
        fresh = pc.and_not(
            pc.equal(checked.status, VALID), tracker.repeats(checked.key, chunk.ordinals)
        )
        keys.append(as_16_bytes(pc.filter(checked.key, fresh), "keys", nulls=False)[0])
        body_hashes = blake2b_128_hex(pc.filter(checked.body, fresh))
        hashes.append(as_16_bytes(body_hashes, "hashes", nulls=False)[0])
    return np.concatenate(keys), np.concatenate(hashes), rows


def fill_ledger(
    path: Path, target: str, keys: npt.NDArray[np.uint8], bodies: npt.NDArray[np.uint8]
) -> None:
    """A fresh SQLite state holding ``keys`` as delivered (with their body hashes), inserted in
    key order (B-tree appends, not random inserts)."""
    for old in path.parent.glob(path.name + "*"):
        old.unlink()
    with Ledger(path, target):
        pass  # creates the schema and the target row
    halves = keys.view(">u8").reshape(-1, 2)
    order = np.lexsort((halves[:, 1], halves[:, 0]))
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous = OFF")
    db.execute("PRAGMA cache_size = -262144")
    target_id = db.execute(
        "SELECT id FROM targets WHERE base_url = ?", (normalise_target(target),)
    ).fetchone()[0]
    run = db.execute("INSERT INTO runs (run_id) VALUES ('bench-build') RETURNING id").fetchone()[0]
    now = int(time.time())
    batch = 1_000_000
    for start in range(0, len(order), batch):
        part = order[start : start + batch]
        key_blob, body_blob = keys[part].tobytes(), bodies[part].tobytes()
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO deliveries (target_id, key, outcome, body_hash, attempts, run,"
            " remote_id, http_status, updated_at) VALUES (?, ?, 2, ?, 1, ?, ?, 201, ?)",
            (
                (
                    target_id,
                    key_blob[16 * i : 16 * i + 16],
                    body_blob[16 * i : 16 * i + 16],
                    run,
                    f"rem-{start + i:020d}",
                    now,
                )
                for i in range(len(part))
            ),
        )
        db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def build_state(csv_path: Path, mapping: Path, new: int, path: Path) -> dict[str, int]:
    """Build the cached state: every deliverable key delivered but ``new`` spread evenly."""
    keys, hashes, rows = deliverable_keys(csv_path, mapping)
    fresh = np.zeros(len(keys), dtype=bool)
    fresh[np.linspace(0, len(keys) - 1, new).astype(np.int64)] = True
    fill_ledger(path, BUILD_TARGET, keys[~fresh], hashes[~fresh])
    return {"rows": rows, "deliverable": len(keys), "delivered": int((~fresh).sum()), "new": new}


def state_copy(cached: Path, folder: Path, target: str) -> Path:
    """A fresh copy of the cached state for one run, its target renamed to ``target``."""
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / "state.sqlite"
    for old in folder.glob("state.sqlite*"):
        old.unlink()
    shutil.copyfile(cached, copy)
    with sqlite3.connect(copy) as db:
        db.execute(
            "UPDATE targets SET base_url = ? WHERE base_url = ?",
            (normalise_target(target), normalise_target(BUILD_TARGET)),
        )
    return copy


def _rss_poller(pid: int, peak: list[int], timeline: list[int], done: threading.Event) -> None:
    """Poll the child's VmHWM (its own peak RSS) until it exits, and its RSS every 5 s."""
    status = Path(f"/proc/{pid}/status")
    polls = 0
    while not done.is_set():
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines())
            peak[0] = max(peak[0], int(fields["VmHWM"].split()[0]))
            if polls % 100 == 0:
                timeline.append(round(int(fields["VmRSS"].split()[0]) / 1024))
        except (OSError, ValueError, KeyError):
            return
        polls += 1
        done.wait(0.05)


def timed_nightly(
    cached: Path, landing: Path, mapping: Path, limit: str, folder: Path, profile: Path | None
) -> dict[str, object]:
    """One ``lms-sync nightly`` in a child process against a fresh sandbox limited to ``limit``;
    seconds from the child's start to classification's end (report.json ``classified_at``),
    to its exit, and its peak RSS. ``profile``: sampled by py-spy into that file (slower)."""
    shutil.rmtree(folder / "runs", ignore_errors=True)
    count, window = limit.split("/")
    config = SandboxConfig(rate_limit=(int(count), float(window.rstrip("s"))))
    with start_sandbox(config) as sandbox, tempfile.TemporaryDirectory() as budgets:
        state = state_copy(cached, folder, sandbox.base_url)
        # Modules come from a bytecode cache under bench/out/, as on a user's machine (an
        # environment with PYTHONDONTWRITEBYTECODE would compile every import, ~3 s of CPU).
        unset = ("LMS_SYNC_", "STACKONE_", "PYTHONDONTWRITEBYTECODE")
        env = {
            **{n: v for n, v in os.environ.items() if not n.startswith(unset)},
            "PYTHONPYCACHEPREFIX": str(OUT / "pycache"),
            "STACKONE_API_KEY": DEFAULT_API_KEY,
            "STACKONE_ACCOUNT_ID": DEFAULT_ACCOUNT_ID,
            "STACKONE_BASE_URL": sandbox.base_url,
            "LMS_SYNC_RATE_LIMIT": limit,
            "LMS_SYNC_BUDGET_DIR": budgets,
            "PREFECT_API_URL": "",
        }
        command = [str(LMS_SYNC), "nightly", str(landing), "-m", str(mapping)]
        if profile is not None:
            spy = Path(sys.executable).with_name("py-spy")
            sampling = ["record", "-r", "50", "--threads", "-f", "raw", "-o", str(profile)]
            command = [str(spy), *sampling, "--", *command]
        command += ["--ledger", str(state), "--out", str(folder / "runs")]
        started = time.time()
        child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        peak, timeline, done = [0], [], threading.Event()
        poller = threading.Thread(
            target=_rss_poller, args=(child.pid, peak, timeline, done), daemon=True
        )
        poller.start()
        output = child.stdout.read() if child.stdout else b""
        _, status, usage = os.wait4(child.pid, 0)
        exited = time.time()
        child.returncode = os.waitstatus_to_exitcode(status)
        done.set()
        posts = [e for e in sandbox.request_log() if e["method"] == "POST"]
    reports = sorted((folder / "runs").glob("*/report.json"))
    if not reports:
        raise SystemExit(f"nightly left no report ({child.returncode}): {output.decode()[-3000:]}")
    report = json.loads(reports[-1].read_text())
    classified = report.get("classified_at")
    classified_s = _epoch(classified) - started if classified else None
    rows = int(report["rows_read"])
    return {
        "exit_code": child.returncode,
        "rows_read": rows,
        "delivered": report["outcomes"]["delivered"],
        "already_delivered": report["reasons"].get("already_delivered", 0),
        "requests": len(posts),
        "start_to_classified_s": round(classified_s, 2) if classified_s is not None else None,
        "start_to_run_start_s": round(_epoch(report["started_at"]) - started, 2),
        "start_to_exit_s": round(exited - started, 2),
        "start_to_last_request_s": round(max(e["time"] for e in posts) - started, 2)
        if posts
        else None,
        "requests_by_classified": sum(1 for e in posts if e["time"] <= started + classified_s)
        if classified_s is not None
        else None,
        "rows_per_s_to_classified": round(rows / classified_s) if classified_s else None,
        "peak_rss_mb": round(max(usage.ru_maxrss, peak[0]) / 1024),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "rss_every_5s_mb": timeline,
        "output_tail": output.decode(errors="replace").strip().splitlines()[-6:],
    }


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
