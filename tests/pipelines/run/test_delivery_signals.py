"""A delivering ``lms-sync run`` in a child process, killed, interrupted or competing for the ledger.

The sandbox runs in the test's own process (a thread server), so it outlives the child and keeps
every request the child had started: with a slow sandbox latency the child is always mid-flight
when the signal arrives. The reruns go through the CLI in-process (DESIGN §7 rerun rules, §8).
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from pipelines.sandbox import RunningSandbox
from pipelines.state.ledger import Ledger
from tests.pipelines.run.kill_scenario import TIMEOUTS, after_kill
from tests.pipelines.run.test_delivery import (
    FAST,
    LMS_SYNC,
    DryRun,
    assert_balanced,
    child_env,
    cli_env,
    deadletter,
    deliver_cli,
    dry_run_truth,
    ledger_counts,
    lms_sync,
    posted_users,
    read_report,
    settled_log,
    stored,
    write_export,
)

SLOW = (150.0, 150.0)  # sandbox latency (median, p99 ms): 8 workers deliver ~50 rows/s


class Child:
    """A delivering ``lms-sync run`` subprocess; its stderr goes to a file for failure messages."""

    def __init__(self, sandbox: RunningSandbox, folder: Path, *args: str | Path) -> None:
        self.stderr_path = folder / "child.stderr"
        self._stderr: IO[bytes] = self.stderr_path.open("wb")
        self.process = subprocess.Popen(
            [str(LMS_SYNC), "run", *map(str, args), "--quiet"],
            env={**child_env(sandbox), **TIMEOUTS},
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.process.pid

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the child."""
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        """Wait for the child to exit; its exit code."""
        code = self.process.wait(timeout)
        self._stderr.close()
        return code

    def stop(self) -> None:
        """Kill the child if it is still running (test teardown)."""
        if self.process.poll() is None:
            self.process.kill()
        self.wait()

    @property
    def stderr(self) -> str:
        """What the child wrote to stderr so far."""
        return self.stderr_path.read_text(errors="replace")


@pytest.fixture
def children() -> Iterator[list[Child]]:
    """Children started by a test; any still running at teardown are killed."""
    started: list[Child] = []
    yield started
    for child in started:
        child.stop()


def wait_for(condition: Callable[[], bool], child: Child, timeout: float = 30) -> None:
    """Poll until ``condition`` holds; fail (with the child's stderr) on timeout or child exit."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert child.process.poll() is None, f"child exited early:\n{child.stderr}"
        assert time.monotonic() < deadline, f"timed out; child stderr:\n{child.stderr}"
        time.sleep(0.05)


def start_delivery(
    children: list[Child],
    sandbox: RunningSandbox,
    tmp_path: Path,
    rows: int,
    concurrency: int,
) -> tuple[Child, DryRun, Path, Path, Path]:
    """An export, its dry-run truth, and a child delivering it; (child, truth, export, mapping,
    ledger)."""
    export, mapping = write_export(tmp_path, rows)
    truth = dry_run_truth(sandbox, export, mapping, tmp_path / "dry")
    ledger = tmp_path / "ledger.sqlite"
    child = Child(
        sandbox, tmp_path, export, "-m", mapping, "--out", tmp_path / "child",
        "--ledger", ledger, "--rate-limit", "2000/1s", "--concurrency", str(concurrency),
    )  # fmt: skip
    children.append(child)
    return child, truth, export, mapping, ledger


def test_a_killed_run_is_finished_by_a_rerun_that_reconciles_the_keys_in_doubt_first(
    make_sandbox: Callable[..., RunningSandbox], tmp_path: Path, children: list[Child]
) -> None:
    """SIGKILL mid-delivery, then a rerun: every valid row ends stored exactly once; the rerun
    lists as in doubt exactly the keys the ledger held in flight, lists each of their users'
    completions once (DESIGN §7), records the ones the API had as delivered (``reconciled``, never
    resent: no 409) and sends the rest and the rows never tried (not one recorded as delivered)."""
    sandbox = make_sandbox(rate_limit=FAST, latency=SLOW)
    child, truth, export, mapping, ledger = start_delivery(children, sandbox, tmp_path, 400, 8)
    wait_for(lambda: len(sandbox.completions()) >= 60, child)
    child.signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL
    after_kill()  # its claims expire
    log_at_kill = settled_log(sandbox)  # requests the child had started have all landed

    with Ledger(ledger, sandbox.base_url) as state:
        doubt = set(state.in_doubt())
        outcome = {key: (state.lookup(key) or {}).get("outcome") for key in truth.keys}
    recorded = {key for key, value in outcome.items() if value == "delivered"}
    stored_keys = {truth.key_of_user[user] for user, _ in stored(sandbox)}
    assert doubt and recorded, "the kill should land mid-delivery"
    assert recorded <= stored_keys <= recorded | doubt  # nothing stored is unknown to the ledger
    assert len(doubt) <= 4 * 8 + 60  # the client's queue and pool, and ~0.25 s of results

    result, report = deliver_cli(
        sandbox, export, mapping, tmp_path / "rerun", ledger, concurrency=48
    )

    assert result.exit_code == 1, result.output  # the export's invalid rows
    assert_balanced(report)
    assert set(report["in_doubt_keys"]) == doubt
    rerun_log = sandbox.request_log()[len(log_at_kill) :]
    listed = Counter(entry["path"] for entry in rerun_log if entry["method"] == "GET")
    assert len(listed) == len(doubt) and set(listed.values()) == {1}  # one user per row here
    resent = Counter(truth.key_of_user[user] for user in posted_users(rerun_log))
    already = doubt & stored_keys
    assert set(resent) == truth.keys - recorded - already and set(resent.values()) == {1}
    assert "http_409" not in report["reasons"]
    assert report["reasons"].get("reconciled", 0) == len(already)
    assert report["outcomes"]["delivered"] == len(truth.keys - recorded)
    assert report["reasons"]["already_delivered"] == len(recorded)
    assert stored(sandbox) == truth.valid
    assert ledger_counts(ledger, sandbox)["in_flight"] == 0


def test_sigint_stops_in_order_and_a_rerun_finishes_the_rest(
    make_sandbox: Callable[..., RunningSandbox], tmp_path: Path, children: list[Child]
) -> None:
    """SIGINT mid-delivery: requests in flight finish and are recorded, report.json is written,
    the rest is pending, the exit code is 3, nothing is left in doubt; a rerun sends the rest."""
    sandbox = make_sandbox(rate_limit=FAST, latency=SLOW)
    child, truth, export, mapping, ledger = start_delivery(children, sandbox, tmp_path, 400, 8)
    wait_for(lambda: len(sandbox.completions()) >= 60, child)
    child.signal(signal.SIGINT)
    assert child.wait() == 3, child.stderr

    first = read_report(tmp_path / "child")
    log = settled_log(sandbox)
    assert first["aborted"] == "interrupted"
    assert_balanced(first)
    outcomes = first["outcomes"]
    assert outcomes["delivered"] == len(stored(sandbox)) == len(log) == first["requests"]["sent"]
    assert outcomes["pending"] == len(truth.payloads) - outcomes["delivered"] > 0
    assert outcomes["failed"] == 0 and first["in_doubt_keys"] == []
    assert {r["_dl_stage"] for r in deadletter(tmp_path / "child")} == {"validate"}
    counts = ledger_counts(ledger, sandbox)
    assert counts["in_flight"] == 0 and counts["delivered"] == outcomes["delivered"]

    result, report = deliver_cli(
        sandbox, export, mapping, tmp_path / "rerun", ledger, concurrency=48
    )

    assert result.exit_code == 1, result.output
    assert report["outcomes"]["delivered"] == outcomes["pending"]
    assert report["reasons"]["already_delivered"] == outcomes["delivered"]
    assert report["in_doubt_keys"] == [] and "http_409" not in report["reasons"]
    assert len(posted_users(sandbox.request_log())) == len(truth.payloads)  # none sent twice
    assert stored(sandbox) == truth.valid


def test_a_second_run_on_the_same_ledger_and_target_never_sends_a_key_twice(
    make_sandbox: Callable[..., RunningSandbox], tmp_path: Path, children: list[Child]
) -> None:
    """While a child process delivers, a second run on the same ledger and target goes side by
    side: keys the child has claimed are pending there (``claimed_elsewhere``), no key is sent
    twice, and a third run sends what is left, so every row is stored exactly once."""
    sandbox = make_sandbox(rate_limit=FAST, latency=(200.0, 200.0))
    child, truth, export, mapping, ledger = start_delivery(children, sandbox, tmp_path, 200, 2)
    wait_for(lambda: len(sandbox.completions()) >= 2, child)

    second = lms_sync(
        "run", export, "-m", mapping, "--out", tmp_path / "second", "--ledger", ledger,
        env=cli_env(sandbox),
    )  # fmt: skip
    assert second.exit_code in (0, 1), second.output
    assert child.wait() in (0, 1), child.stderr
    reports = [read_report(tmp_path / "second")]
    assert reports[0]["reasons"].get("claimed_elsewhere", 0) > 0
    result, third = deliver_cli(sandbox, export, mapping, tmp_path / "third", ledger)
    assert result.exit_code in (0, 1), result.output
    users = posted_users(sandbox.request_log())
    assert len(users) == len(set(users)) == len(truth.payloads)  # not one key sent twice
    assert stored(sandbox) == truth.valid
    assert "http_409" not in third["reasons"]
