"""The delivery ledger against real SQLite files: statuses, the run lock, rerun rules, crashes."""

from __future__ import annotations

import hashlib
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

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
    ledger.begin(run_id)
    ledger.claim([k], [key("body")])
    ledger.record([KeyResult(k, "failed", status, None, f"http_{status}", "rejected")], run_id)


def seed_every_status(ledger: Ledger) -> dict[str, str]:
    """Write one key per ledger state in runs r1..r3."""
    k = {
        name: key(name) for name in ("delivered", "changed", "in_doubt", "retry", "gave_up", "dup")
    }
    ledger.begin("r1")
    ledger.claim(list(k.values()), [key("body")] * len(k), lease_seconds=0)
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
        ledger.begin("r1")
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
        ledger.begin("r1")
        ledger.claim([key("a")], [key("body")])
        ledger.record([KeyResult(key("a"), "delivered", 201, "x")], "r1")
        raw = pa.array([bytes.fromhex(key("a")), bytes.fromhex(key("b"))], pa.binary(16))
        got = ledger.classify(raw, pa.array([None, key("body")], pa.string())).to_pylist()
        assert got == ["delivered", "new"]


def test_empty_columns_are_fine(state_store: StateLocation) -> None:
    """An empty chunk classifies to an empty answer and writes nothing."""
    with Ledger(state_store, TARGET) as ledger:
        ledger.begin("r1")
        assert classify(ledger, [], []) == []
        ledger.claim([], [])
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


def test_a_key_claimed_by_a_live_run_is_not_claimed_by_another(state_store: StateLocation) -> None:
    """Two runs on one target claim side by side: a key under another run's live lease is not
    claimed; the run that holds it may claim it again; other targets are apart."""
    a, b, shared = key("a-only"), key("b-only"), key("both")
    with Ledger(state_store, TARGET) as first, Ledger(state_store, TARGET + "/") as second:
        first.begin("run-A")
        second.begin("run-B")
        assert first.claim([a, shared], [key("x")] * 2) == {a, shared}
        assert second.claim([b, shared], [key("x")] * 2) == {b}
        assert first.claim([shared], [key("x")]) == {shared}  # its own claim
        with Ledger(state_store, "https://other.example") as other:
            other.begin("run-C")
            assert other.claim([shared], [key("x")]) == {shared}
        first.record([KeyResult(shared, "delivered", 201, "r")])
        assert second.claim([shared], [key("x")]) == set()  # delivered: nothing to claim


def test_an_expired_claim_is_in_doubt_and_can_be_taken_over(state_store: StateLocation) -> None:
    """A run that stopped renewing: once its lease expired, its keys are in doubt for the next
    run (reconciled before a resend), which may claim them; a live claim is never in doubt."""
    live, lapsed = key("live"), key("lapsed")
    with Ledger(state_store, TARGET) as first, Ledger(state_store, TARGET) as second:
        first.begin("run-A")
        first.claim([live], [key("x")], lease_seconds=600)
        first.claim([lapsed], [key("x")], lease_seconds=0.2)
        second.begin("run-B")
        assert second.in_doubt("run-B") == []
        time.sleep(0.4)
        assert second.in_doubt("run-B") == [lapsed]
        assert second.claim([live, lapsed], [key("x")] * 2) == {lapsed}
        assert first.renew(600) == 1  # run A still holds the live one


def test_renewing_keeps_a_claim_alive(state_store: StateLocation) -> None:
    """A lease renewed before it expires keeps the key out of other runs' reach."""
    k = key("renewed")
    with Ledger(state_store, TARGET) as first, Ledger(state_store, TARGET) as second:
        first.begin("run-A")
        first.claim([k], [key("x")], lease_seconds=0.5)
        second.begin("run-B")
        for _ in range(3):
            time.sleep(0.2)
            first.renew(0.5)
        assert second.claim([k], [key("x")]) == set()


def test_writes_need_a_run(state_store: StateLocation) -> None:
    """Claiming or recording before ``begin`` names a run is refused."""
    with Ledger(state_store, TARGET) as ledger:
        with pytest.raises(RuntimeError, match="begin"):
            ledger.claim([key("a")], [key("b")])
        with pytest.raises(RuntimeError, match="begin"):
            ledger.record([KeyResult(key("a"), "delivered", 201)], "r1")


def test_gave_up_after_failing_in_three_runs(state_store: StateLocation) -> None:
    """A 4xx counts once per run; the third failing run gives up; 5xx and 429 do not count."""
    k = key("row")
    with Ledger(state_store, TARGET) as ledger:
        ledger.begin("r1")
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
        ledger.begin("r1")
        k = seed_every_status(ledger)
        assert classify(ledger, [k["gave_up"]], [key("body")]) == ["gave_up"]
        assert ledger.retry_failed() == 1
        assert classify(ledger, [k["gave_up"]], [key("body")]) == ["retry"]
        assert ledger.lookup(k["gave_up"])["failed_runs"] == 0  # type: ignore[index]
        assert ledger.retry_failed() == 0


def test_forget_makes_keys_new_again(state_store: StateLocation) -> None:
    """Forgotten keys are sent again; the count says how many the ledger held."""
    with Ledger(state_store, TARGET) as ledger:
        ledger.begin("r1")
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
    crashed.begin("r1")
    crashed.claim(keys, [key("body")] * 3, lease_seconds=0)
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
        ledger.begin("r1")
        retry, fresh = key("retry"), key("fresh")
        fail(ledger, retry, "r1")
        ledger.begin("r2")
        ledger.claim([retry, fresh], [key("body")] * 2)
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
    ledger.begin("doomed")
    batch = 0
    while True:
        keys = [key(f"{batch}-{j}") for j in range(40)]
        ledger.claim(pa.array(keys), pa.array(keys))
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
        ledger.begin("after")
        counts = ledger.counts()
        assert counts["failed"] == counts["gave_up"] == counts["duplicate"] == 0
        assert counts["in_flight"] + counts["delivered"] >= (marked + 1) * 40
        for batch in range(marked + 1):
            keys = [key(f"{batch}-{j}") for j in range(40)]
            states = set(classify(ledger, keys, keys))
            assert states <= {"delivered", "in_doubt"}, (batch, states)
        earlier = [key(f"{b}-{j}") for b in range(marked) for j in range(40)]
        assert set(classify(ledger, earlier, earlier)) == {"delivered"}
