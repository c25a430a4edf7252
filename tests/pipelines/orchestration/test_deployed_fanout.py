"""The whole deployed path: ``prefect.yaml`` deployed to a real Prefect server, a process pool with
two workers, PostgreSQL state named by a Secret block, exports and run folders in an S3 emulator,
delivery to the sandbox; the backfill deployment with ``parallel=2`` spreads its files over both
workers as flow runs of the sync-completions deployment.

Worker A (room for 2 flow runs) takes the backfill's own flow run first; worker B (room for 1)
starts after it, so the two files running at a time go one to each worker. Each worker has its own
PREFECT_HOME and TMPDIR (its own staged copies of the bucket's objects) and neither the API key
nor a state URL in its environment: both come from Secret blocks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from pydantic import SecretStr

from pipelines.sandbox import RunningSandbox
from tests.conftest import SANDBOX_KEY
from tests.pipelines.orchestration.test_deployments import _story, deployed, prefect_server
from tests.pipelines.run.test_jobs import MAPPING, SAMPLE, SAMPLE_SENT, write_history
from tests.prefect_cluster import (
    SECRET_BLOCK,
    PrefectServer,
    bucket_worker_env,
    child_runs,
    spawned,
    worker_command,
    worker_of,
)
from tests.s3_server import Bucket
from tests.state_stores import fresh_postgres_state

__all__ = ["deployed", "prefect_server"]  # fixtures of test_deployments, used here

pytestmark = pytest.mark.slow

STATE_BLOCK = "lms-state"
TIMEOUT = 200.0  # seconds for the whole backfill (4 files, 2 at a time, each a new process)


def _wait(read: Callable[[], Any], done: Callable[[Any], bool], what: str, log: Path) -> Any:
    """Poll ``read`` until ``done`` holds; fail with the worker log after ``TIMEOUT``."""
    deadline = time.monotonic() + TIMEOUT
    while not done(value := read()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what} after {TIMEOUT:.0f} s: {value}\n{log.read_text()}")
        time.sleep(1)
    return value


def _artifacts(client: Any, run_ids: list[UUID]) -> dict[str, list[Any]]:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    found = client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=run_ids))
    )
    by_key: dict[str, list[Any]] = {}
    for artifact in found:
        by_key.setdefault(artifact.key or "", []).append(artifact)
    return by_key


def test_a_deployed_parallel_backfill_spreads_its_files_over_two_workers(
    prefect_server: PrefectServer,
    deployed: dict[str, Any],
    make_sandbox: Callable[..., RunningSandbox],
    postgres_url: str,
    s3: Bucket,
    tmp_path: Path,
) -> None:
    """4 exports in a bucket, ``parallel=2``: 4 child flow runs on both workers, every row
    delivered once (PostgreSQL ledger through the state block), run folders and dead-letter
    files in the bucket, the progress, job, summary and dead-letter artifacts in the API."""
    from prefect import get_client
    from prefect.blocks.system import Secret

    sandbox = make_sandbox(rate_limit=(100_000, 1.0))
    state = fresh_postgres_state(postgres_url)
    assert state.url is not None
    Secret(value=SecretStr(SANDBOX_KEY)).save(SECRET_BLOCK, overwrite=True)
    Secret(value=state.url).save(STATE_BLOCK, overwrite=True)
    files = [*write_history(tmp_path / "history", 3, 30), SAMPLE]
    for path in files:
        s3.put(f"history/year=2023/{path.name}", path.read_bytes())
    parameters = {
        "sources": [f"s3://{s3.name}/history/"],
        "mapping": str(MAPPING.relative_to(MAPPING.parents[2])),  # relative: the checkout's
        "out": f"s3://{s3.name}/runs",
        "state_block": STATE_BLOCK,
        "parallel": 2,
    }
    envs = {  # no API key: from the Secret block the backfill names
        name: bucket_worker_env(prefect_server, sandbox.base_url, tmp_path / name, s3.env)
        for name in ("worker-a", "worker-b")
    }
    log_a, log_b = tmp_path / "worker-a.log", tmp_path / "worker-b.log"
    with (
        get_client(sync_client=True) as client,
        spawned(worker_command("worker-a", 2), envs["worker-a"], log_a),
    ):
        backfill = client.read_deployment_by_name("backfill/backfill")
        child = client.read_deployment_by_name("sync_completions/sync-completions")
        parent = client.create_flow_run_from_deployment(backfill.id, parameters=parameters)
        _wait(lambda: client.read_flow_run(parent.id), lambda r: r.state.is_running() or
              r.state.is_final(), "backfill not started", log_a)  # fmt: skip
        with spawned(worker_command("worker-b", 1), envs["worker-b"], log_b):
            final = _wait(lambda: client.read_flow_run(parent.id), lambda r: r.state.is_final(),
                          "backfill not final", log_a)  # fmt: skip
            children = child_runs(client, parent.id)
            stories = "\n".join(_story(client, run) for run in [final, *children])
            assert final.state.message == "rows were dead-lettered (see the run summaries)", (
                f"{stories}\n{log_b.read_text()}"
            )
            by_name = {"worker-a": log_a, "worker-b": log_b}
            workers = {worker_of(client, run, by_name) for run in children}
            artifacts = _artifacts(client, [parent.id, *(run.id for run in children)])
    assert final.state.is_failed()  # the sample's bad rows: a backfill without a threshold fails
    assert len(children) == len(files), stories
    assert {run.deployment_id for run in children} == {child.id}
    assert all(run.state.is_final() and not run.state.is_crashed() for run in children), stories
    assert workers == {"worker-a", "worker-b"}, stories

    reports = {
        key: json.loads(s3.get(key)) for key in s3.keys("runs/") if key.endswith("report.json")
    }
    assert sorted(Path(key).parent.name for key in reports) == sorted(
        [*(f"learning_2023-0{n}" for n in (1, 2, 3)), "workday_learning"]
    )
    assert all(
        r["outcomes"]["pending"] == 0 and r["outcomes"]["failed"] == 0 for r in reports.values()
    )
    assert reports["runs/workday_learning/report.json"]["outcomes"]["delivered"] == SAMPLE_SENT
    delivered = sum(r["outcomes"]["delivered"] for r in reports.values())
    stored = sandbox.completions()
    keys = {(c["user_id"], json.dumps(c["body"], sort_keys=True)) for c in stored}
    assert len(stored) == len(keys) == delivered > SAMPLE_SENT  # every row delivered once
    assert "runs/workday_learning/deadletter.csv" in s3.keys("runs/")
    assert reports["runs/workday_learning/report.json"]["deadletter"]["csv"] == (
        f"s3://{s3.name}/runs/workday_learning/deadletter.csv"
    )
    with psycopg.connect(state.url.get_secret_value()) as conn:  # the state block's store
        row = conn.execute("SELECT count(*) FROM deliveries WHERE outcome = 2").fetchone()
    assert row is not None and row[0] == delivered

    assert [a.data for a in artifacts["lms-sync-backfill-progress"]] == [100.0]
    assert "workday_learning.csv" in artifacts["lms-sync-backfill"][0].data
    assert len(artifacts["lms-sync-run-summary"]) == len(files)
    assert len(artifacts["lms-sync-deadletter-reasons"]) == 1  # the sample's rows only
