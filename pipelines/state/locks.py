"""The ledger's run lock: one run at a time per target, naming its holder, and taking over the
lock of a process that is gone (same host, pid no longer alive)."""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipelines.core.errors import LockError
from pipelines.state.database import StateDB

__all__ = ["LockHolder", "drop_lock", "lock_holder", "take_lock"]


@dataclass
class LockHolder:
    """The run holding a target's lock, as the ``locks`` table records it."""

    run_id: str
    pid: int
    host: str
    pid_start: str | None
    since: str

    def is_mine(self, run_id: str) -> bool:
        """Is this lock already held by ``run_id`` in this very process?"""
        return (self.run_id, self.pid, self.host) == (run_id, os.getpid(), socket.gethostname())

    def blocks(self) -> bool:
        """Does the holder still hold it (another host, or a process that is still alive)?"""
        return self.host != socket.gethostname() or _pid_alive(self.pid, self.pid_start)

    def lock_error(self, where: str, target: str) -> LockError:
        """The error a run gets when this holder keeps it out."""
        return LockError(
            f"{where} is in use for {target} by run {self.run_id} "
            f"(pid {self.pid} on {self.host}, since {self.since}); "
            "wait for it to finish or pass --wait",
            run_id=self.run_id,
            pid=self.pid,
            host=self.host,
            since=self.since,
        )


def lock_holder(db: StateDB, target_id: int) -> LockHolder | None:
    """Who holds the target's lock, if anyone (read inside the caller's write transaction)."""
    row = db.execute(
        "SELECT run_id, pid, host, pid_start, since FROM locks WHERE target_id = ?",
        (target_id,),
    ).fetchone()
    return None if row is None else LockHolder(*row)


def take_lock(db: StateDB, target_id: int, run_id: str) -> None:
    """Record this process as the lock's holder for ``run_id``, replacing any previous one."""
    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    db.execute(
        """INSERT INTO locks VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (target_id) DO UPDATE SET
               run_id = excluded.run_id, pid = excluded.pid, host = excluded.host,
               pid_start = excluded.pid_start, since = excluded.since""",
        (target_id, run_id, os.getpid(), socket.gethostname(), _pid_start(os.getpid()), since),
    )


def drop_lock(db: StateDB, target_id: int, run_id: str) -> None:
    """Delete the target's lock if this process holds it for ``run_id``."""
    db.execute(
        "DELETE FROM locks WHERE target_id = ? AND run_id = ? AND pid = ? AND host = ?",
        (target_id, run_id, os.getpid(), socket.gethostname()),
    )


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time) of a process from /proc, or None where there is no /proc entry."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], fields[19]


def _pid_start(pid: int) -> str | None:
    stat = _proc_stat(pid)
    return stat[1] if stat else None


def _pid_alive(pid: int, started: str | None) -> bool:
    """Is this pid (on this host) still the process that took the lock?"""
    if sys.platform == "win32":
        return True  # no safe liveness probe: never take a lock over
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = _proc_stat(pid)
    if stat is None:
        return True
    state, start = stat
    if state in ("Z", "X"):
        return False
    return started is None or start == started
