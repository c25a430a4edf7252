"""``prefect --no-prompt deploy --all`` of ``prefect.yaml`` against a temporary Prefect server,
and every deployment run to its final state by one process worker delivering to a sandbox.

The server (``prefect server start``, own PREFECT_HOME, free 127.0.0.1 port), the CLI and the
worker are subprocesses of this virtualenv; each is stopped with every process it started (the
worker's flow runs sit in sessions of their own) at teardown, also when a test fails.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import pytest
from pydantic import SecretStr

from pipelines.sandbox import RunningSandbox
from tests.conftest import SANDBOX_KEY
from tests.prefect_cluster import (
    POOL,
    PREFECT,
    ROOT,
    SECRET_BLOCK,
    PrefectServer,
    deploy_all,
    running_prefect_server,
    spawned,
    worker_env,
)

pytestmark = pytest.mark.slow

SAMPLES = ROOT / "data" / "samples"
STEP = "prefect.deployments.steps.set_working_directory"
RUN_TIMEOUT = 240.0
# Final state, message and rows delivered of each deployment's run with the parameters below:
# every sample has dead-lettered rows, so backfill (no max_invalid_pct) ends Failed by design
# (pipelines/orchestration/states.py: job_state); nightly allows 50 % (cornerstone: 8 of 24).
EXPECTED = {
    "sync-completions": ("COMPLETED", None, 10),
    "adhoc-import": ("COMPLETED", None, 8),
    "nightly-cornerstone": ("COMPLETED", None, 10),
    "backfill": ("FAILED", "rows were dead-lettered (see the run summaries)", 6),
}


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """``prefect server start`` for the module; this process's Prefect client points at it."""
    home = tmp_path_factory.mktemp("prefect-home")
    with running_prefect_server(home) as server, pytest.MonkeyPatch.context() as patch:
        for name in ("PREFECT_HOME", "PREFECT_API_URL", "PREFECT_SERVER_ANALYTICS_ENABLED"):
            patch.setenv(name, server.env[name])
        # Imported here, once the environment names the server (Prefect reads it on import).
        from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

        updates = {PREFECT_API_URL: server.api_url, PREFECT_HOME: str(home)}
        with temporary_settings(updates=updates):
            yield server


@pytest.fixture(scope="module")
def deployed(prefect_server: PrefectServer) -> dict[str, Any]:
    """The ``lms-sync`` process pool and ``prefect --no-prompt deploy --all``; prefect.yaml read."""
    return deploy_all(prefect_server)


def test_deploy_all_creates_every_deployment(deployed: dict[str, Any]) -> None:
    """Each deployment of prefect.yaml exists with its entrypoint, pool, parameters and pull step."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        created = {deployment.name: deployment for deployment in client.read_deployments()}
    assert sorted(created) == sorted(spec["name"] for spec in deployed["deployments"])
    for spec in deployed["deployments"]:
        deployment = created[spec["name"]]
        assert deployment.entrypoint == spec["entrypoint"]
        assert deployment.work_pool_name == POOL
        assert deployment.parameters == spec["parameters"]
        # `prefect deploy` filled in its LMS_SYNC_HOME: flow runs change into this checkout.
        assert deployment.pull_steps == [{STEP: {"directory": str(ROOT)}}]


def _run_parameters(tmp_path: Path) -> dict[str, dict[str, Any]]:
    """Per deployment, the parameters overridden at run time: ledgers and run folders in tmp."""
    landing = tmp_path / "landing"
    landing.mkdir()
    shutil.copy(SAMPLES / "cornerstone_transcript.csv", landing)
    runs: dict[str, dict[str, Any]] = {
        "sync-completions": {},
        "adhoc-import": {"send": True},
        "nightly-cornerstone": {"landing": str(landing), "max_invalid_pct": 50},
        "backfill": {"sources": [str(SAMPLES / "moodle_scorm_tracks.parquet")]},
    }
    for name, parameters in runs.items():
        parameters["ledger"] = str(tmp_path / "state" / name / "ledger.sqlite")
        parameters["out"] = str(tmp_path / "runs" / name)
    return runs


def _delivered(out: Path) -> int:
    """Rows delivered by the runs whose report.json files sit under ``out``."""
    reports = [orjson.loads(path.read_bytes()) for path in out.rglob("report.json")]
    return sum(int(report["outcomes"]["delivered"]) for report in reports)


def _wait_final(
    read: Callable[[UUID], Any], ids: dict[str, UUID], worker_log: Path
) -> dict[str, Any]:
    """Flow runs by deployment name, once every one is in a final state."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        runs = {name: read(flow_run_id) for name, flow_run_id in ids.items()}
        if all(run.state is not None and run.state.is_final() for run in runs.values()):
            return runs
        if time.monotonic() > deadline:
            states = {name: run.state_name for name, run in runs.items()}
            pytest.fail(f"not final after {RUN_TIMEOUT:.0f} s: {states}\n{worker_log.read_text()}")
        time.sleep(1)


def _story(client: Any, run: Any) -> str:
    """A flow run's state message and log, for a failure message."""
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])))
    lines = "\n".join(f"  {log.level} {log.message}" for log in logs)
    return f"{run.name}: {run.state_name} {run.state.message!r}\n{lines}"


def test_every_deployment_runs_on_a_process_worker(
    prefect_server: PrefectServer,
    deployed: dict[str, Any],
    make_sandbox: Callable[..., RunningSandbox],
    tmp_path: Path,
) -> None:
    """One worker runs each deployment to its final state; the sandbox receives the completions."""
    from prefect import get_client
    from prefect.blocks.system import Secret

    sandbox = make_sandbox(rate_limit=(100_000, 1.0))
    Secret(value=SecretStr(SANDBOX_KEY)).save(SECRET_BLOCK, overwrite=True)
    runs = _run_parameters(tmp_path)
    repo_data = sorted((ROOT / "data").rglob("*"))
    entrypoints = {spec["name"]: spec["entrypoint"] for spec in deployed["deployments"]}
    worker = [*PREFECT, "worker", "start", "--pool", POOL, "--prefetch-seconds", "1"]
    env = worker_env(prefect_server, sandbox.base_url, tmp_path / "worker-home")
    with (
        get_client(sync_client=True) as client,
        spawned(worker, env, tmp_path / "worker.log"),
    ):
        ids = {}
        for name, parameters in runs.items():
            flow_name = entrypoints[name].rsplit(":", 1)[1]
            deployment = client.read_deployment_by_name(f"{flow_name}/{name}")
            flow_run = client.create_flow_run_from_deployment(deployment.id, parameters=parameters)
            ids[name] = flow_run.id
        final = _wait_final(client.read_flow_run, ids, tmp_path / "worker.log")
        stories = "\n".join(_story(client, run) for run in final.values())
    outcome = {
        name: (run.state.type.value, run.state.message if run.state.is_failed() else None)
        for name, run in final.items()
    }
    assert outcome == {name: expected[:2] for name, expected in EXPECTED.items()}, stories
    delivered = {name: _delivered(Path(runs[name]["out"])) for name in runs}
    assert delivered == {name: expected[2] for name, expected in EXPECTED.items()}
    assert len(sandbox.completions()) == sum(delivered.values())
    assert sorted((ROOT / "data").rglob("*")) == repo_data  # ledgers and run folders went to tmp
