"""What the ledger keeps for reconciling keys in doubt (schema 2): where each key was sent, the
unified id of its completion, and a schema-1 file upgraded in place."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from pipelines.state.key_results import KeyResult
from pipelines.state.ledger import Ledger
from pipelines.state.state_schema import SCHEMA_VERSION
from tests.pipelines.state.test_ledger import TARGET, key


def test_keys_in_doubt_come_with_account_user_and_the_moment_in_flight(tmp_path: Path) -> None:
    """Marked with their destinations, the keys still in flight are listed with account, user id
    and the second they went in flight; recorded keys and unknown keys are not."""
    k1, k2, k3 = key("a"), key("b"), key("c")
    before = int(time.time())
    with Ledger(tmp_path / "l.sqlite", TARGET) as ledger:
        ledger.begin("r1")
        ledger.claim([k1, k2], [key("x"), key("y")], [("acc", "u/1"), ("acc", "u2")], 0)
        ledger.record([KeyResult(k2, "delivered", 201, "remote-2", completion_id="cid-2")], "r1")
        doubts = ledger.doubts([k1, k2, k3])
        record = ledger.lookup(k2)
    assert list(doubts) == [k1]
    doubt = doubts[k1]
    assert (doubt.account_id, doubt.user_id) == ("acc", "u/1")
    assert before <= doubt.in_flight_since.timestamp() <= time.time()
    assert doubt.in_flight_since.tzinfo == UTC
    assert record is not None
    assert (record["completion_id"], record["remote_id"], record["user_id"]) == (
        "cid-2", "remote-2", "u2",
    )  # fmt: skip


def test_a_schema_1_file_is_upgraded_in_place_and_keeps_its_keys(tmp_path: Path) -> None:
    """A ledger written before schema 2 opens: the new columns are added (NULL for old keys),
    its keys keep their outcome, and its in-doubt keys are listed without a destination."""
    path = tmp_path / "old.sqlite"
    k1, k2 = key("old-1"), key("old-2")
    with Ledger(path, TARGET) as ledger:
        ledger.begin("r1")
        ledger.claim([k1, k2], [key("x"), key("y")], lease_seconds=0)
        ledger.record([KeyResult(k2, "delivered", 201, "remote-2")], "r1")
    with closing(sqlite3.connect(path)) as db:  # turn it back into a schema-1 file
        db.execute("DROP VIEW deliveries_readable")
        for column in ("account_id", "user_id", "completion_id"):
            db.execute(f"ALTER TABLE deliveries DROP COLUMN {column}")
        db.execute("PRAGMA user_version = 1")
        db.commit()

    with Ledger(path, TARGET) as ledger:
        doubts = ledger.doubts([k1, k2])
        record = ledger.lookup(k2)
        counts = ledger.counts()
    with closing(sqlite3.connect(path)) as db:
        version = db.execute("PRAGMA user_version").fetchone()[0]
    assert version == SCHEMA_VERSION == 3
    assert counts["in_flight"] == 1 and counts["delivered"] == 1
    assert (doubts[k1].account_id, doubts[k1].user_id) == (None, None)
    assert doubts[k1].in_flight_since <= datetime.now(UTC)
    assert record is not None and record["remote_id"] == "remote-2"
    assert record["completion_id"] is None
