"""The shared rate budget's grants: stamped and released by token among many others."""

from __future__ import annotations

from pathlib import Path

from pipelines.core.state_location import StateLocation
from pipelines.state.rate_budget import BudgetStore


def test_stamp_and_release_find_their_grant_by_token_among_thousands(tmp_path: Path) -> None:
    """At a high limit the window holds thousands of grants: a stamp or a release touches its
    own grant only, through the token index (a scan per request throttled the sender)."""
    store = BudgetStore.open(StateLocation.sqlite(tmp_path / "state.sqlite"), "key-hash", tmp_path)
    try:
        tokens = []
        for _ in range(3000):
            wait, token = store.grant(100_000, 60.0)
            assert wait == 0.0 and token
            tokens.append(token)
        store.stamp(tokens[10])
        store.release(tokens[20])
        db = store.db
        left = db.execute("SELECT count(*) FROM rate_grants").fetchone()[0]
        assert left == len(tokens) - 1
        gone = db.execute("SELECT 1 FROM rate_grants WHERE token = ?", (tokens[20],)).fetchone()
        assert gone is None
        plan = db.execute(
            "EXPLAIN QUERY PLAN UPDATE rate_grants SET at = 0 WHERE key_hash = ? AND token = ?",
            ("key-hash", tokens[10]),
        ).fetchall()
        assert any("rate_grants_token" in str(step) for step in plan), plan
    finally:
        store.close()
