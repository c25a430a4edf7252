"""Bench: a backfill on the deployed path with one worker, then two.

    uv run python bench/deployed.py [--files 4] [--rows 300] [--limit 300/10s] [--parallel 2]

The whole path of tests/pipelines/orchestration/test_deployed_fanout.py: a Prefect server,
``prefect deploy --all`` of prefect.yaml, the process pool, PostgreSQL state through a Secret
block, the exports in moto's S3 emulator and the sandbox limited to ``--limit`` (the workers use
the same limit). Each case gets a fresh sandbox, bucket and state, then triggers the backfill
deployment over the bucket prefix with ``parallel``: with one worker (room for the backfill and
``parallel`` files), then with two (the second started once the backfill runs on the first, as
in the test, so the files spread). Prints one JSON line per case: wall time from the trigger to
the backfill's final state and when the backfill itself started, rows delivered, and per file
its worker, when the backfill asked for it and when it started (s after the trigger) and its
duration.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.core.rate_limit import parse_rate_limit
from pipelines.sandbox import SandboxConfig, start_sandbox
from tests.conftest import SANDBOX_KEY
from tests.pipelines.run.test_jobs import MAPPING, write_history
from tests.postgres_server import running_postgres
from tests.prefect_cluster import (
    POOL,
    ROOT,
    SECRET_BLOCK,
    PrefectServer,
    bucket_worker_env,
    child_runs,
    deploy_all,
    running_prefect_server,
    spawned,
    worker_command,
    worker_of,
)
from tests.s3_server import new_bucket, running_s3
from tests.state_stores import fresh_postgres_state

STATE_BLOCK = "lms-state"
TIMEOUT = 900.0  # seconds for one case


def _wait(read: Any, done: Any, what: str) -> Any:
    """Poll ``read()`` every 0.2 s until ``done(value)``; an error after ``TIMEOUT``."""
    deadline = time.monotonic() + TIMEOUT
    while not done(value := read()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} after {TIMEOUT:.0f} s")
        time.sleep(0.2)
    return value


def _online(client: Any, name: str) -> bool:
    """Has the worker ``name`` said hello to the server?"""
    return any(w.name == name for w in client.read_workers_for_work_pool(work_pool_name=POOL))


def _started(client: Any, run_id: Any) -> bool:
    """Is the flow run running (or already over)?"""
    state = client.read_flow_run(run_id).state
    return bool(state.is_running() or state.is_final())


def one_case(workers: int, args: argparse.Namespace, server: PrefectServer) -> dict[str, object]:
    """Trigger the backfill with ``workers`` workers; its wall time, per file too (``args``
    carries the scratch folder, the PostgreSQL URL and the S3 emulator's URL too)."""
    from prefect import get_client
    from prefect.blocks.system import Secret

    folder, tag = Path(args.folder), f"w{workers}"
    limit, window = parse_rate_limit(args.limit)
    state = fresh_postgres_state(args.postgres)
    assert state.url is not None
    Secret(value=state.url).save(STATE_BLOCK, overwrite=True)
    bucket = new_bucket(args.s3)
    for path in write_history(folder / tag / "history", args.files, args.rows):
        bucket.put(f"history/{path.name}", path.read_bytes())
    parameters = {
        "sources": [bucket.url("history/")],
        "mapping": str(MAPPING.relative_to(ROOT)),
        "out": bucket.url("runs"),
        "state_block": STATE_BLOCK,
        "parallel": args.parallel,
    }
    slots = [args.parallel + 1] if workers == 1 else [2, args.parallel - 1]
    with ExitStack() as stack, start_sandbox(SandboxConfig(rate_limit=(limit, window))) as sandbox:
        client = stack.enter_context(get_client(sync_client=True))
        names = [f"{tag}-{chr(ord('a') + i)}" for i in range(workers)]
        envs = {
            name: {
                **bucket_worker_env(server, sandbox.base_url, folder / tag / name, bucket.env),
                "LMS_SYNC_RATE_LIMIT": args.limit,
            }
            for name in names
        }
        log = folder / tag / f"{names[0]}.log"
        stack.enter_context(spawned(worker_command(names[0], slots[0]), envs[names[0]], log))
        _wait(lambda: _online(client, names[0]), bool, f"{names[0]} not online")
        backfill = client.read_deployment_by_name("backfill/backfill")
        triggered = time.time()
        parent = client.create_flow_run_from_deployment(backfill.id, parameters=parameters)
        if workers == 2:
            _wait(lambda: _started(client, parent.id), bool, "backfill not started")
            log = folder / tag / f"{names[1]}.log"
            stack.enter_context(spawned(worker_command(names[1], slots[1]), envs[names[1]], log))
        final = _wait(lambda: client.read_flow_run(parent.id), lambda r: r.state.is_final(), "")
        files = [_file_figures(client, run, triggered) for run in child_runs(client, parent.id)]
        stored = len(sandbox.completions())
    reports = [json.loads(bucket.get(k)) for k in bucket.keys("runs/") if k.endswith("report.json")]
    return {
        "workers": workers,
        "parallel": args.parallel,
        "files": f"{args.files}x{args.rows} rows",
        "limit": args.limit,
        "state": final.state.name,
        "wall_s": round(final.end_time.timestamp() - triggered, 1),
        "backfill_start_s": round(final.start_time.timestamp() - triggered, 1),
        "delivered": sum(r["outcomes"]["delivered"] for r in reports),
        "stored": stored,
        "per_file": sorted(files, key=lambda f: float(str(f["start_s"]))),
    }


def _file_figures(client: Any, run: Any, triggered: float) -> dict[str, object]:
    """A child flow run: its file, worker, when the backfill asked for it and when it started
    (seconds after the trigger; between them a worker starts its process) and its duration."""
    return {
        "file": Path(run.parameters["sources"][0]).name,
        "worker": worker_of(client, run),
        "asked_s": round(run.created.timestamp() - triggered, 1),
        "start_s": round(run.start_time.timestamp() - triggered, 1),
        "run_s": round(run.end_time.timestamp() - run.start_time.timestamp(), 1),
    }


def main() -> None:
    """One JSON line per case (1 worker, then 2)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--limit", default="300/10s")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], choices=[1, 2])
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="lms-sync-bench-") as folder,
        running_postgres() as postgres,
        running_s3() as s3,
    ):
        (Path(folder) / "prefect-home").mkdir()
        with running_prefect_server(Path(folder) / "prefect-home") as server:
            os.environ.update({n: server.env[n] for n in ("PREFECT_HOME", "PREFECT_API_URL")})
            from prefect.blocks.system import Secret
            from pydantic import SecretStr

            deploy_all(server)
            Secret(value=SecretStr(SANDBOX_KEY)).save(SECRET_BLOCK, overwrite=True)
            args.folder, args.postgres, args.s3 = folder, postgres, s3
            for workers in args.workers:
                print(json.dumps(one_case(workers, args, server)), flush=True)


if __name__ == "__main__":
    main()
