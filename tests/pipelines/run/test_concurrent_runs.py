"""Runs with one API key in separate OS processes, one PostgreSQL state and one sandbox: key
claims keep two runs given overlapping exports from sending a key twice, the shared rate budget
keeps their sum under the key's limit, and a run killed while holding claims leaves them to expire
and be reconciled by the next run."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from pipelines.sandbox import RunningSandbox
from tests.conftest import max_requests_in_window
from tests.pipelines.run.kill_scenario import LEASE_SECONDS, TIMEOUTS, accepted
from tests.pipelines.run.test_delivery import (
    LMS_SYNC,
    child_env,
    dry_run_truth,
    posted_users,
    read_report,
    settled_log,
    stored,
    write_export,
)
from tests.state_stores import fresh_postgres_state

LIMIT = (15, 1.0)  # the key's limit at the sandbox: two runs each allowed all of it
LATENCY = (40.0, 400.0)  # median and p99 ms


def overlapping(export: Path, folder: Path) -> tuple[Path, Path]:
    """Two exports of the rows of ``export``: the first two thirds and the last two thirds."""
    header, *rows = export.read_text(encoding="utf-8").splitlines(keepends=True)
    third = len(rows) // 3
    first, second = folder / "first.csv", folder / "second.csv"
    first.write_text(header + "".join(rows[: 2 * third]), encoding="utf-8")
    second.write_text(header + "".join(rows[third:]), encoding="utf-8")
    return first, second


def start(
    sandbox: RunningSandbox, export: Path, mapping: Path, out: Path, state_url: str
) -> subprocess.Popen[bytes]:
    """``lms-sync run`` of ``export`` in a child process, on the shared PostgreSQL state."""
    env = {**child_env(sandbox), **TIMEOUTS, "LMS_SYNC_STATE_URL": state_url}
    with out.with_suffix(".stderr").open("wb") as stderr:  # the child keeps its own copy
        return subprocess.Popen(
            [str(LMS_SYNC), "run", str(export), "-m", str(mapping), "--out", str(out),
             "--rate-limit", f"{LIMIT[0]}/{LIMIT[1]:g}s", "--concurrency", "6", "--quiet"],
            env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip


def test_two_processes_with_overlapping_exports_never_send_a_key_twice(
    make_sandbox: Callable[..., RunningSandbox], tmp_path: Path, postgres_url: str
) -> None:
    """Two processes, exports overlapping by a third, one key: no key sent twice, no 429, never
    more than the limit in any window; the overlap is delivered by one run and is pending
    (``claimed_elsewhere``) or already delivered for the other."""
    sandbox = make_sandbox(rate_limit=LIMIT, latency=LATENCY)
    export, mapping = write_export(tmp_path / "export", 240)
    truth = dry_run_truth(sandbox, export, mapping, tmp_path / "dry")
    first, second = overlapping(export, tmp_path)
    state = fresh_postgres_state(postgres_url).url.get_secret_value()  # type: ignore[union-attr]

    runs = [start(sandbox, src, mapping, tmp_path / src.stem, state) for src in (first, second)]
    codes = [run.wait(300) for run in runs]
    assert set(codes) <= {0, 1}, [
        (tmp_path / f"{n}.stderr").read_text() for n in ("first", "second")
    ]
    final = start(sandbox, export, mapping, tmp_path / "final", state)
    assert final.wait(300) in (0, 1)

    log = settled_log(sandbox)
    users = posted_users(log)
    assert [e for e in log if e["status"] == 429] == []
    assert len(users) == len(set(users)) == len(truth.payloads)  # not one key sent twice
    assert max_requests_in_window(log, LIMIT[1]) <= LIMIT[0]
    assert stored(sandbox) == truth.valid
    reports = [read_report(tmp_path / name) for name in ("first", "second", "final")]
    assert reports[2]["outcomes"]["delivered"] == 0  # the two runs delivered everything


def test_a_killed_process_leaves_its_claims_to_expire_and_the_next_run_reconciles(
    make_sandbox: Callable[..., RunningSandbox], tmp_path: Path, postgres_url: str
) -> None:
    """One of two processes is SIGKILLed while it holds claims: the other finishes without
    touching those keys; once the claims expired the next run reconciles them against an API
    that stores repeats, and every row is stored exactly once."""
    sandbox = make_sandbox(rate_limit=LIMIT, latency=LATENCY, store_repeats=True)
    export, mapping = write_export(tmp_path / "export", 240)
    truth = dry_run_truth(sandbox, export, mapping, tmp_path / "dry")
    first, second = overlapping(export, tmp_path)
    state = fresh_postgres_state(postgres_url).url.get_secret_value()  # type: ignore[union-attr]

    doomed = start(sandbox, first, mapping, tmp_path / "doomed", state)
    other = start(sandbox, second, mapping, tmp_path / "other", state)
    deadline = time.monotonic() + 120
    while accepted(sandbox.request_log()) < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(30)
    assert other.wait(300) in (0, 1)
    time.sleep(LEASE_SECONDS + 0.5)  # the killed run's claims expire
    final = start(sandbox, export, mapping, tmp_path / "final", state)
    assert final.wait(300) in (0, 1)

    settled_log(sandbox)
    assert doomed.returncode == -signal.SIGKILL
    assert stored(sandbox) == truth.valid  # every row once, none twice
    assert read_report(tmp_path / "final")["outcomes"]["pending"] == 0
