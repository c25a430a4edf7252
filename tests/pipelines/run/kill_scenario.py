"""The "killed delivery" scenario of issue 8, shared by ``test_reconcile.py`` and the closing
note's before/after measurement: delivering ``lms-sync run`` subprocesses against a sandbox that
stores exact repeats, each killed with SIGKILL at a chosen moment, then one run to the end.

Moments are read from the sandbox's request log: the number of completions it accepted (201s)
in all runs so far, or the first completion listing (a GET) of the current run.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.sandbox import RunningSandbox
from pipelines.state.ledger_schema import IN_FLIGHT
from tests.pipelines.run.test_delivery import child_env, settled_log, stored, write_export

__all__ = [
    "LEASE_SECONDS",
    "TIMEOUTS",
    "KillScenario",
    "Phase",
    "accepted",
    "after_kill",
    "listings",
]

# Short request timeouts give the killed runs short leases (twice the timeouts, at least 5 s):
# the next run may take their keys over once that much time has passed since the kill. 5 s
# stays far above the sandboxes' slowest answers, so no request is retried after a timeout.
TIMEOUTS = {"LMS_SYNC_CONNECT_TIMEOUT": "1", "LMS_SYNC_READ_TIMEOUT": "5"}
LEASE_SECONDS = 12.0


def after_kill() -> None:
    """Wait until a killed run's claims have expired: its keys are in doubt from then on."""
    time.sleep(LEASE_SECONDS + 0.5)


def accepted(log: list[dict[str, Any]]) -> int:
    """Completions the sandbox accepted (created) in ``log``."""
    return sum(1 for entry in log if entry["method"] == "POST" and entry["status"] == 201)


def listings(log: list[dict[str, Any]]) -> int:
    """Completion listings (GETs of a user's completions) in ``log``."""
    return sum(
        1 for e in log if e["method"] == "GET" and e["path"].split("?")[0].endswith("/completions")
    )


@dataclass
class Phase:
    """One killed run: what killed it, whether it was still running then, and what it left."""

    kill: str
    killed: bool  # False: the run ended before the moment came
    in_flight: int  # keys the ledger holds in doubt after the kill
    duplicates: int  # completions stored more than once so far (extra copies)


@dataclass
class KillScenario:
    """An export, its ledger, and ``lms-sync`` runs (``lms_sync``: the console script to test)."""

    sandbox: RunningSandbox
    folder: Path
    lms_sync: Path
    rows: int = 300
    concurrency: int = 8
    phases: list[Phase] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.export, self.mapping = write_export(self.folder, self.rows)
        self.ledger = self.folder / "ledger.sqlite"
        self._runs = 0

    def start(self) -> subprocess.Popen[bytes]:
        """A delivering run of the export on the scenario's ledger, in a child process."""
        self._runs += 1
        out = self.folder / f"run-{self._runs}"
        with (self.folder / f"run-{self._runs}.stderr").open("wb") as stderr:
            return subprocess.Popen(  # the child keeps its own copy of the stderr file
                [str(self.lms_sync), "run", str(self.export), "-m", str(self.mapping),
                 "--out", str(out), "--ledger", str(self.ledger), "--rate-limit", "2000/1s",
                 "--concurrency", str(self.concurrency), "--quiet"],
                env={**child_env(self.sandbox), **TIMEOUTS}, cwd=self.folder,
                stdout=subprocess.DEVNULL, stderr=stderr,
            )  # fmt: skip

    def kill_run(self, kill: str, moment: Callable[[list[dict[str, Any]]], bool]) -> Phase:
        """Start a run, SIGKILL it once ``moment(log)`` holds, let its requests land, record it."""
        child = self.start()
        killed = False
        deadline = time.monotonic() + 120
        while child.poll() is None and time.monotonic() < deadline:
            if moment(self.sandbox.request_log()):
                child.send_signal(signal.SIGKILL)
                killed = True
                break
            time.sleep(0.005)
        child.wait(60)
        settled_log(self.sandbox)  # the requests the child had started have all landed
        if killed:
            after_kill()
        phase = Phase(kill, killed, self.in_flight(), self.duplicates())
        self.phases.append(phase)
        return phase

    def kill_after_accepted(self, count: int) -> Phase:
        """A run killed once the sandbox has accepted ``count`` completions in all."""
        return self.kill_run(f"after {count} accepted", lambda log: accepted(log) >= count)

    def kill_in_reconciliation(self) -> Phase:
        """A run killed right after its first completion listing."""
        before = listings(self.sandbox.request_log())
        return self.kill_run("in reconciliation", lambda log: listings(log) > before)

    def finish(self) -> int:
        """A run to the end; its exit code."""
        code = self.start().wait(300)
        settled_log(self.sandbox)
        return code

    def in_flight(self) -> int:
        """Keys the ledger holds in flight (in doubt)."""
        if not self.ledger.exists():
            return 0
        # Read-only and without the Ledger class, so an older tool's file stays as it wrote it.
        with closing(sqlite3.connect(f"{self.ledger.as_uri()}?mode=ro", uri=True)) as db:
            query = f"SELECT count(*) FROM deliveries WHERE outcome = {IN_FLIGHT}"
            return int(db.execute(query).fetchone()[0])

    def duplicates(self) -> int:
        """Extra copies among the stored completions."""
        return sum(n - 1 for n in stored(self.sandbox).values())
