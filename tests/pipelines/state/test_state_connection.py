"""One state connection shared by threads: a run renews its leases in a worker thread while it
records outcomes in another; their transactions take turns instead of failing."""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow as pa

from pipelines.core.state_location import StateLocation
from pipelines.state.database import connect_state
from pipelines.state.key_results import KeyResult
from pipelines.state.ledger import Ledger


def test_a_second_thread_waits_for_the_open_transaction_instead_of_failing(tmp_path: Path) -> None:
    """A write begun in one thread while another thread's transaction is open waits for its
    commit (SQLite alone would say 'cannot start a transaction within a transaction')."""
    db = connect_state(StateLocation.sqlite(tmp_path / "state.sqlite"))
    db.execute("CREATE TABLE log (n INTEGER)")
    inside, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def first() -> None:
        with db.write():
            db.execute("INSERT INTO log VALUES (1)")
            inside.set()
            release.wait(10)
            db.execute("INSERT INTO log VALUES (2)")

    def second() -> None:
        try:
            with db.write():
                db.execute("INSERT INTO log VALUES (3)")
        except BaseException as exc:
            errors.append(exc)

    one = threading.Thread(target=first)
    one.start()
    assert inside.wait(10)
    two = threading.Thread(target=second)
    two.start()
    two.join(timeout=0.3)
    assert two.is_alive(), f"the second transaction did not wait: {errors}"
    release.set()
    one.join(10)
    two.join(10)
    assert errors == []
    assert [n for (n,) in db.execute("SELECT n FROM log ORDER BY rowid")] == [1, 2, 3]
    db.close()


def test_leases_renewed_in_a_thread_while_outcomes_are_recorded(tmp_path: Path) -> None:
    """A ledger's renewals from a worker thread interleave with outcomes recorded in this one:
    every key ends delivered, none fails with a transaction error."""
    keys = [f"{n:032x}" for n in range(1, 401)]
    with Ledger(tmp_path / "state.sqlite", "https://api.example.test") as ledger:
        ledger.begin("run-1")
        assert ledger.claim(pa.array(keys), pa.array(keys)) == set(keys)
        stop = threading.Event()
        renewals: list[int] = []
        errors: list[BaseException] = []

        def renew() -> None:
            while not stop.is_set():
                try:
                    renewals.append(ledger.renew(60.0))
                except BaseException as exc:
                    errors.append(exc)
                    return

        renewer = threading.Thread(target=renew)
        renewer.start()
        try:
            for key in keys:  # one commit per key: many chances to meet a renewal
                ledger.record([KeyResult(key, "delivered", 201, remote_id=f"r-{key}")])
        finally:
            stop.set()
            renewer.join(10)
        assert errors == []
        assert renewals, "the renewing thread never ran"
        assert ledger.counts()["delivered"] == len(keys)
