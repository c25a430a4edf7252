"""A Prefect server, its process pool and workers as subprocesses of this virtualenv, for the
deployment tests and ``bench/deployed.py``: ``prefect server start`` (own PREFECT_HOME, free
127.0.0.1 port), ``prefect deploy --all`` of ``prefect.yaml``, ``prefect worker start``. Each
process is stopped with every process it started (a worker's flow runs sit in sessions of their
own), also when the caller fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import yaml

from tests.conftest import SANDBOX_ACCOUNT, SANDBOX_KEY

ROOT = Path(__file__).resolve().parents[1]
PREFECT = [sys.executable, "-m", "prefect"]
POOL = "lms-sync"
SECRET_BLOCK = "stackone-api-key"  # the block nightly-cornerstone and backfill name
START_TIMEOUT = 150.0  # seconds; a busy 2-core machine starts the server slowly


@dataclass(frozen=True)
class PrefectServer:
    """A running ``prefect server start``: its API URL and the environment of its clients."""

    api_url: str
    env: dict[str, str]


def clean_environment() -> dict[str, str]:
    """This process's environment without Prefect, StackOne or lms-sync settings."""
    prefixes = ("PREFECT_", "STACKONE_", "LMS_SYNC_")
    return {name: value for name, value in os.environ.items() if not name.startswith(prefixes)}


def free_port() -> int:
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
def spawned(
    command: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
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


def prefect_cli(args: list[str], env: dict[str, str]) -> None:
    """Run a Prefect CLI command from the repository root; an error with its output."""
    done = subprocess.run(
        [*PREFECT, *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=START_TIMEOUT, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(f"prefect {' '.join(args)}:\n{done.stdout}\n{done.stderr}")


def _wait_healthy(server: subprocess.Popen[bytes], api_url: str, log: Path) -> None:
    """Wait until the server answers /health; an error with its log if it exits or times out."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and server.poll() is None:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise AssertionError(f"Prefect server not healthy (exit {server.poll()}):\n{log.read_text()}")


@contextlib.contextmanager
def running_prefect_server(home: Path) -> Iterator[PrefectServer]:
    """``prefect server start`` (the API alone: no scheduler, events or late runs) with its
    PREFECT_HOME in ``home``, until the block ends."""
    api_url = f"http://127.0.0.1:{free_port()}/api"
    env = {
        **clean_environment(),
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    }
    port = api_url.split(":")[-1].removesuffix("/api")
    command = [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", port, "--no-services"]
    with spawned(command, env, home / "server.log") as server:
        _wait_healthy(server, api_url, home / "server.log")
        yield PrefectServer(api_url, env)


def deploy_all(server: PrefectServer) -> dict[str, Any]:
    """The ``lms-sync`` process pool and ``prefect --no-prompt deploy --all``; prefect.yaml read."""
    prefect_cli(["work-pool", "create", POOL, "--type", "process"], server.env)
    prefect_cli(["--no-prompt", "deploy", "--all"], {**server.env, "LMS_SYNC_HOME": str(ROOT)})
    config: dict[str, Any] = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    return config


def worker_env(server: PrefectServer, base_url: str, home: Path) -> dict[str, str]:
    """What a worker (and so each flow run it starts) needs to deliver to the sandbox."""
    return {
        **server.env,
        "PREFECT_HOME": str(home),
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "LMS_SYNC_RATE_LIMIT": "100000/1s",
        "STACKONE_BASE_URL": base_url,
        "STACKONE_API_KEY": SANDBOX_KEY,
        "STACKONE_ACCOUNT_ID": SANDBOX_ACCOUNT,
    }


def bucket_worker_env(
    server: PrefectServer, base_url: str, home: Path, bucket_env: dict[str, str]
) -> dict[str, str]:
    """A worker of deployed runs over a bucket: its own PREFECT_HOME and TMPDIR (its own staged
    copies of the objects) under ``home``, the bucket's variables, and no API key (the runs name
    a Secret block)."""
    env = {**worker_env(server, base_url, home), **bucket_env}
    del env["STACKONE_API_KEY"]
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    return {**env, "TMPDIR": str(home / "tmp")}


def worker_command(name: str, limit: int) -> list[str]:
    """``prefect worker start`` of the pool, named, running at most ``limit`` flow runs at once."""
    return [*PREFECT, "worker", "start", "--pool", POOL, "--name", name, "--limit", str(limit),
            "--prefetch-seconds", "1"]  # fmt: skip


def child_runs(client: Any, parent: UUID) -> list[Any]:
    """The flow runs started as subflows of ``parent``."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    parent_filter = FlowRunFilterParentFlowRunId(any_=[parent])
    return list(
        client.read_flow_runs(flow_run_filter=FlowRunFilter(parent_flow_run_id=parent_filter))
    )


def worker_of(client: Any, run: Any, worker_logs: dict[str, Path] | None = None) -> str:
    """The worker that submitted a flow run, from the run's own log in the Prefect API.

    Two workers may race for one run: both log "submitting", the server lets one through and
    the other aborts, which only that worker's own output (``worker_logs``, by name) tells.
    """
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])))
    said = [log.message.split("'")[1] for log in logs if "submitting flow run" in log.message]
    if len(said) > 1 and worker_logs is not None:
        aborted = f"Aborted submission of flow run '{run.id}'"
        said = [name for name in said if aborted not in worker_logs[name].read_text()]
    assert len(said) == 1, [log.message for log in logs]
    return said[0]
