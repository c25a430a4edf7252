"""The delivery ledger against real SQLite files: statuses, the run lock, rerun rules, crashes."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from pipelines.core.errors import LockError
from pipelines.core.state_location import StateLocation
from pipelines.state.key_results import KeyResult
from pipelines.state.key_set import KeySet as _KeySet
from pipelines.state.ledger import Ledger

TARGET = "https://api.stackone.com"
REPO = Path(__file__).resolve().parents[3]


def key(text: str) -> str:
    """A hex BLAKE2b-128, shaped like an idempotency key or a body hash."""
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def classify(ledger: Ledger, keys: Sequence[str], bodies: Sequence[str | None]) -> list[str]:
    """Classify Python lists; the answer as a list."""
    return ledger.classify(pa.array(keys), pa.array(bodies, pa.string())).to_pylist()


def fail(ledger: Ledger, k: str, run_id: str, status: int = 400) -> None:
    """One run sends ``k`` and the API rejects it."""
    ledger.mark_in_flight([k], [key("body")], run_id)
    ledger.record([KeyResult(k, "failed", status, None, f"http_{status}", "rejected")], run_id)


def seed_every_status(ledger: Ledger) -> dict[str, str]:
    """Write one key per ledger state in runs r1..r3 (the ledger must be acquired)."""
    k = {
        name: key(name) for name in ("delivered", "changed", "in_doubt", "retry", "gave_up", "dup")
    }
    ledger.mark_in_flight(list(k.values()), [key("body")] * len(k), "r1")
    ledger.record(
        [
            KeyResult(k["delivered"], "delivered", 201, "remote-1"),
            KeyResult(k["changed"], "delivered", 201, "remote-2"),
            KeyResult(k["dup"], "duplicate", 409, None, "http_409", "exists"),
            KeyResult(k["retry"], "failed", 422, None, "http_422", "bad score"),
            KeyResult(k["gave_up"], "failed", 400, None, "http_400", "bad"),
        ],
        "r1",
    )
    fail(ledger, k["gave_up"], "r2")
    fail(ledger, k["gave_up"], "r3")
    return k


EXPECTED = [
    "new",
    "delivered",
    "changed_after_delivery",
    "in_doubt",
    "retry",
    "gave_up",
    "duplicate",
]


@pytest.mark.parametrize("reopen", [False, True], ids=["own-writes", "fresh-instance"])
def test_classify_gives_every_status(state_store: StateLocation, reopen: bool) -> None:
    """Each §7 rerun state is recognised, from this instance's writes and from a fresh load."""
    path = state_store
    with Ledger(path, TARGET) as ledger:
        ledger.acquire("r1")
        ledger.classify(pa.array([key("warm")]), pa.array([key("body")]))  # snapshot before writes
        k = seed_every_status(ledger)
        if not reopen:
            keys = [key("new"), k["delivered"], k["changed"], k["in_doubt"], k["retry"]]
            bodies = [key("body"), key("body"), key("other body"), key("body"), key("body")]
            got = classify(ledger, [*keys, k["gave_up"], k["dup"]], [*bodies, key("b"), key("b")])
            assert got == EXPECTED
            return
    with Ledger(path, TARGET) as ledger:
        keys = [key("new"), k["delivered"], k["changed"], k["in_doubt"], k["retry"]]
        bodies = [key("body"), key("body"), key("other body"), key("body"), key("body")]
        got = classify(ledger, [*keys, k["gave_up"], k["dup"]], [*bodies, key("b"), key("b")])
        assert got == EXPECTED


def test_classify_takes_binary_keys_and_null_hashes(state_store: StateLocation) -> None:
    """16-byte binary keys work like hex; a null body hash never reads as a change."""
    with Ledger(state_store, TARGET) as ledger:
        ledger.acquire("r1")
        ledger.mark_in_flight([key("a")], [key("body")], "r1")
        ledger.record([KeyResult(key("a"), "delivered", 201, "x")], "r1")
        raw = pa.array([bytes.fromhex(key("a")), bytes.fromhex(key("b"))], pa.binary(16))
        got = ledger.classify(raw, pa.array([None, key("body")], pa.string())).to_pylist()
        assert got == ["delivered", "new"]


def test_empty_columns_are_fine(state_store: StateLocation) -> None:
    """An empty chunk classifies to an empty answer and writes nothing."""
    with Ledger(state_store, TARGET) as ledger:
        ledger.acquire("r1")
        assert classify(ledger, [], []) == []
        ledger.mark_in_flight([], [], "r1")
        assert ledger.unmark([]) == 0
        assert sum(ledger.counts().values()) == 0


def test_classify_rejects_malformed_columns(state_store: StateLocation) -> None:
    """Keys that are not 32 hex characters, or a length mismatch, are programming errors."""
    with Ledger(state_store, TARGET) as ledger:
        with pytest.raises(ValueError, match="hexadecimal"):
            ledger.classify(pa.array(["z" * 32]), pa.array([key("b")]))
        with pytest.raises(ValueError, match="32 hex"):
            ledger.classify(pa.array(["abc"]), pa.array([key("b")]))
        with pytest.raises(ValueError, match="body hashes"):
            ledger.classify(pa.array([key("a")]), pa.array([key("b"), key("c")]))


def test_classify_handles_keys_sharing_their_first_eight_bytes() -> None:
    """The in-memory search stays exact when two known keys share the high 64 bits."""
    raw = np.zeros((4, 16), dtype=np.uint8)
    raw[:, 15] = [9, 3, 7, 1]  # same first 8 bytes, different last byte
    pairs = raw.view(">u8").reshape(-1, 2).astype(np.uint64)
    known, order = _KeySet.build(pairs[:, 0], pairs[:, 1])
    assert known.shared_hi and order is not None
    probe = np.zeros((3, 16), dtype=np.uint8)
    probe[:, 15] = [7, 5, 1]
    hi, lo = probe[:, :8].copy().view(">u8").ravel(), probe[:, 8:].copy().view(">u8").ravel()
    found = known.find(hi.astype(np.uint64), lo.astype(np.uint64))
    assert [int(raw[order][i, 15]) if i >= 0 else None for i in found] == [7, None, 1]


def test_second_run_fails_fast_naming_the_holder(state_store: StateLocation) -> None:
    """A second run on the same ledger and target gets LockError with run id, pid, host, since."""
    path = state_store
    with Ledger(path, TARGET) as first, Ledger(path, TARGET + "/") as second:
        first.acquire("run-A")
        with pytest.raises(LockError) as caught:
            second.acquire("run-B")
        message = str(caught.value)
        assert "run-A" in message and str(os.getpid()) in message
        assert socket.gethostname() in message and caught.value.since in message
        assert caught.value.exit_code == 2
        with Ledger(path, "https://other.example") as other:
            other.acquire("run-C")  # another target is another lock


def test_wait_polls_until_the_holder_releases(tmp_path: Path) -> None:
    """``wait=True`` blocks while another run holds the lock and takes it once released."""
    path = tmp_path / "l.sqlite"
    held, errors = threading.Event(), []

    def holder() -> None:
        try:
            with Ledger(path, TARGET) as first:
                first.acquire("run-A")
                held.set()
                time.sleep(0.3)
        except Exception as exc:  # surfaced below: a thread cannot fail the test itself
            errors.append(exc)
            held.set()

    thread = threading.Thread(target=holder)
    thread.start()
    assert held.wait(10)
    with Ledger(path, TARGET) as second:
        with pytest.raises(LockError, match="run-A"):
            second.acquire("run-B")
        started = time.monotonic()
        second.acquire("run-B", wait=True, poll_seconds=0.05)
        assert time.monotonic() - started >= 0.1
    thread.join(10)
    assert errors == []


def test_lock_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    """A run that died holding the lock (pid gone) does not block the next one."""
    path = tmp_path / "l.sqlite"
    child = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from pipelines.state.ledger import Ledger
        ledger = Ledger(Path({str(path)!r}), {TARGET!r}).open()
        ledger.acquire("crashed-run")
        os._exit(0)
        """
    )
    subprocess.run([sys.executable, "-c", child], check=True, cwd=REPO, timeout=60)
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT run_id FROM locks").fetchall() == [("crashed-run",)]
    with Ledger(path, TARGET) as ledger:
        ledger.acquire("next-run")
        with Ledger(path, TARGET) as other, pytest.raises(LockError, match="next-run"):
            other.acquire("third-run")


def test_writes_need_the_lock(state_store: StateLocation) -> None:
    """Marking or recording without holding the lock is refused."""
    with Ledger(state_store, TARGET) as ledger:
        with pytest.raises(RuntimeError, match="acquire"):
            ledger.mark_in_flight([key("a")], [key("b")], "r1")
        with pytest.raises(RuntimeError, match="acquire"):
            ledger.record([KeyResult(key("a"), "delivered", 201)], "r1")


def test_gave_up_after_failing_in_three_runs(state_store: StateLocation) -> None:
    """A 4xx counts once per run; the third failing run gives up; 5xx and 429 do not count."""
    k = key("row")
    with Ledger(state_store, TARGET) as ledger:
        ledger.acquire("r1")
        fail(ledger, k, "r1")
        fail(ledger, k, "r1")  # same run again: still one failed run
        fail(ledger, k, "r2", status=503)
        fail(ledger, k, "r2", status=429)
        assert ledger.lookup(k)["failed_runs"] == 1  # type: ignore[index]
        assert classify(ledger, [k], [key("body")]) == ["retry"]
        fail(ledger, k, "r3", status=422)
        assert classify(ledger, [k], [key("body")]) == ["retry"]
        fail(ledger, k, "r4", status=404)
        row = ledger.lookup(k)
        assert row is not None
        assert (row["outcome"], row["failed_runs"], row["attempts"]) == ("gave_up", 3, 6)
        assert (row["http_status"], row["error_code"], row["run_id"]) == (404, "http_404", "r4")
        assert classify(ledger, [k], [key("body")]) == ["gave_up"]


def test_retry_failed_lifts_gave_up(state_store: StateLocation) -> None:
    """``retry_failed`` turns gave_up keys back into retries with a fresh count."""
    path = state_store
    with Ledger(path, TARGET) as ledger:
        ledger.acquire("r1")
        k = seed_every_status(ledger)
        assert classify(ledger, [k["gave_up"]], [key("body")]) == ["gave_up"]
        assert ledger.retry_failed() == 1
        assert classify(ledger, [k["gave_up"]], [key("body")]) == ["retry"]
        assert ledger.lookup(k["gave_up"])["failed_runs"] == 0  # type: ignore[index]
        assert ledger.retry_failed() == 0


def test_forget_makes_keys_new_again(state_store: StateLocation) -> None:
    """Forgotten keys are sent again; the count says how many the ledger held."""
    with Ledger(state_store, TARGET) as ledger:
        ledger.acquire("r1")
        k = seed_every_status(ledger)
        assert classify(ledger, [k["delivered"]], [key("body")]) == ["delivered"]
        assert ledger.forget([k["delivered"], k["gave_up"], key("never seen")]) == 2
        got = classify(ledger, [k["delivered"], k["gave_up"]], [key("body"), key("body")])
        assert got == ["new", "new"]
        assert ledger.lookup(k["delivered"]) is None


def test_crashed_run_leaves_keys_in_doubt(state_store: StateLocation) -> None:
    """Keys marked in_flight and never recorded are in doubt for the next run (to resend)."""
    path = state_store
    keys = [key(f"k{i}") for i in range(3)]
    crashed = Ledger(path, TARGET).open()
    crashed.acquire("r1")
    crashed.mark_in_flight(keys, [key("body")] * 3, "r1")
    crashed.record([KeyResult(keys[0], "delivered", 201, "x")], "r1")
    conn, crashed._conn = crashed._db, None  # the run "dies": no record, no release
    conn.close()
    with Ledger(path, TARGET) as ledger:
        assert classify(ledger, keys, [key("body")] * 3) == ["delivered", "in_doubt", "in_doubt"]
        assert ledger.in_doubt("r2") == sorted(keys[1:])
        assert ledger.counts() == {
            "in_flight": 2,
            "delivered": 1,
            "failed": 0,
            "gave_up": 0,
            "duplicate": 0,
        }


def test_unmark_restores_what_keys_were(state_store: StateLocation) -> None:
    """Keys marked but never sent return to their earlier state; new ones leave the ledger."""
    with Ledger(state_store, TARGET) as ledger:
        ledger.acquire("r1")
        retry, fresh = key("retry"), key("fresh")
        fail(ledger, retry, "r1")
        ledger.mark_in_flight([retry, fresh], [key("body")] * 2, "r2")
        assert ledger.unmark([retry, fresh]) == 2
        assert classify(ledger, [retry, fresh], [key("body")] * 2) == ["retry", "new"]
        assert ledger.lookup(retry)["failed_runs"] == 1  # type: ignore[index]


def test_file_is_wal_and_private(tmp_path: Path) -> None:
    """The ledger runs in WAL mode and its file is readable by the owner only."""
    path = tmp_path / "state" / "ledger.sqlite"
    with Ledger(path, TARGET) as ledger:
        assert ledger._db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert path.stat().st_mode & 0o077 == 0


_WRITER = """
import hashlib, sys
from pathlib import Path
import pyarrow as pa
from pipelines.state.key_results import KeyResult
from pipelines.core.state_location import StateLocation
from pipelines.state.ledger import Ledger

def key(text):
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()

with Ledger(Path(sys.argv[1]), "https://api.stackone.com") as ledger:
    ledger.acquire("doomed")
    batch = 0
    while True:
        keys = [key(f"{batch}-{j}") for j in range(40)]
        ledger.mark_in_flight(pa.array(keys), pa.array(keys), "doomed")
        print("marked", batch, flush=True)
        ledger.record(KeyResult(k, "delivered", 201, "remote") for k in keys)
        print("recorded", batch, flush=True)
        batch += 1
"""


def test_ledger_survives_sigkill(tmp_path: Path) -> None:
    """SIGKILL in the middle of marking and recording: the file opens, every key is accounted."""
    path = tmp_path / "l.sqlite"
    marked = -1
    with subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)], cwd=REPO, stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                what, number = line.split()
                if what == "marked":
                    marked = int(number)
                if marked >= 25:
                    break
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with Ledger(path, TARGET) as ledger:
        ledger.acquire("after")  # the dead writer's lock is taken over
        counts = ledger.counts()
        assert counts["failed"] == counts["gave_up"] == counts["duplicate"] == 0
        assert counts["in_flight"] + counts["delivered"] >= (marked + 1) * 40
        for batch in range(marked + 1):
            keys = [key(f"{batch}-{j}") for j in range(40)]
            states = set(classify(ledger, keys, keys))
            assert states <= {"delivered", "in_doubt"}, (batch, states)
        earlier = [key(f"{b}-{j}") for b in range(marked) for j in range(40)]
        assert set(classify(ledger, earlier, earlier)) == {"delivered"}
