"""``prefect --no-prompt deploy --all`` of ``prefect.yaml`` against a temporary Prefect server,
and every deployment run to its final state by one process worker delivering to a sandbox.

The server (``prefect server start``, own PREFECT_HOME, free 127.0.0.1 port), the CLI and the
worker are subprocesses of this virtualenv; each is stopped with every process it started (the
worker's flow runs sit in sessions of their own) at teardown, also when a test fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import orjson
import pytest
import yaml
from pydantic import SecretStr

from pipelines.sandbox import RunningSandbox
from tests.conftest import SANDBOX_ACCOUNT, SANDBOX_KEY

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = ROOT / "data" / "samples"
PREFECT = [sys.executable, "-m", "prefect"]
POOL = "lms-sync"
STEP = "prefect.deployments.steps.set_working_directory"
SECRET_BLOCK = "stackone-api-key"  # the block nightly-cornerstone and backfill name
START_TIMEOUT = 150.0  # seconds; a busy 2-core machine starts the server slowly
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


@dataclass(frozen=True)
class PrefectServer:
    """A running ``prefect server start``: its API URL and the environment of its clients."""

    api_url: str
    env: dict[str, str]


def _clean_environment() -> dict[str, str]:
    """This process's environment without Prefect, StackOne or lms-sync settings."""
    prefixes = ("PREFECT_", "STACKONE_", "LMS_SYNC_")
    return {name: value for name, value in os.environ.items() if not name.startswith(prefixes)}


def _free_port() -> int:
    """A port free on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _process_table() -> dict[int, tuple[int, str]]:
    """Every process: pid -> (parent pid, start time), from /proc."""
    table: dict[int, tuple[int, str]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            table[int(stat.parent.name)] = (int(fields[1]), fields[19])
    return table


def _tree(root: int) -> dict[int, str]:
    """``root`` and its descendants: pid -> start time (to never signal a reused pid)."""
    table = _process_table()
    found = {root: table[root][1]} if root in table else {}
    grew = True
    while grew:
        children = {pid: start for pid, (ppid, start) in table.items() if ppid in found}
        grew = not children.keys() <= found.keys()
        found.update(children)
    return found


def _signal_tree(tree: dict[int, str], signum: int) -> None:
    """Send ``signum`` to the processes of ``tree`` still running."""
    table = _process_table()
    for pid, start in tree.items():
        if pid in table and table[pid][1] == start:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)


@contextlib.contextmanager
def _spawned(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` (output to ``log``); at exit stop it and every process it started."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        yield process
    finally:
        tree = _tree(process.pid)
        _signal_tree(tree, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=15)
        _signal_tree({**tree, **_tree(process.pid)}, signal.SIGKILL)
        process.wait(timeout=15)


def _prefect(args: list[str], env: dict[str, str]) -> None:
    """Run a Prefect CLI command from the repository root; fail the test with its output."""
    done = subprocess.run(
        [*PREFECT, *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=START_TIMEOUT, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout}\n{done.stderr}"


def _wait_healthy(server: subprocess.Popen[bytes], api_url: str, log: Path) -> None:
    """Wait until the server answers /health; fail with its log if it exits or times out."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and server.poll() is None:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    pytest.fail(f"Prefect server not healthy (exit {server.poll()}):\n{log.read_text()}")


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """``prefect server start`` for the module; this process's Prefect client points at it."""
    home = tmp_path_factory.mktemp("prefect-home")
    api_url = f"http://127.0.0.1:{_free_port()}/api"
    env = {
        **_clean_environment(),
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    }
    port = api_url.split(":")[-1].removesuffix("/api")
    # The API alone: no scheduler (no runs of nightly-cornerstone's cron), events or late runs.
    command = [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", port, "--no-services"]
    with (
        _spawned(command, env, home / "server.log") as server,
        pytest.MonkeyPatch.context() as patch,
    ):
        _wait_healthy(server, api_url, home / "server.log")
        for name in ("PREFECT_HOME", "PREFECT_API_URL", "PREFECT_SERVER_ANALYTICS_ENABLED"):
            patch.setenv(name, env[name])
        # Imported here, once the environment names the server (Prefect reads it on import).
        from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: api_url, PREFECT_HOME: str(home)}):
            yield PrefectServer(api_url, env)


@pytest.fixture(scope="module")
def deployed(prefect_server: PrefectServer) -> dict[str, Any]:
    """The ``lms-sync`` process pool and ``prefect --no-prompt deploy --all``; prefect.yaml read."""
    _prefect(["work-pool", "create", POOL, "--type", "process"], prefect_server.env)
    _prefect(["--no-prompt", "deploy", "--all"], {**prefect_server.env, "LMS_SYNC_HOME": str(ROOT)})
    config: dict[str, Any] = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    return config


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


def _worker_env(server: PrefectServer, sandbox: RunningSandbox, home: Path) -> dict[str, str]:
    """What a worker (and so each flow run it starts) needs to deliver to the sandbox."""
    return {
        **server.env,
        "PREFECT_HOME": str(home),
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "LMS_SYNC_RATE_LIMIT": "100000/1s",
        "STACKONE_BASE_URL": sandbox.base_url,
        "STACKONE_API_KEY": SANDBOX_KEY,
        "STACKONE_ACCOUNT_ID": SANDBOX_ACCOUNT,
    }


def _delivered(out: Path) -> int:
    """Rows delivered by the runs whose report.json files sit under ``out``."""
    reports = [orjson.loads(path.read_bytes()) for path in out.rglob("report.json")]
    return sum(int(report["outcomes"]["delivered"]) for report in reports)


def _wait_final(read: Callable[[UUID], Any], ids: dict[str, UUID], worker_log: Path) -> dict[str, Any]:
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
    worker_env = _worker_env(prefect_server, sandbox, tmp_path / "worker-home")
    with (
        get_client(sync_client=True) as client,
        _spawned(worker, worker_env, tmp_path / "worker.log"),
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
