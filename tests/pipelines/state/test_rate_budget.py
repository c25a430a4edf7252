"""The shared rate budget's grants: stamped and released by token among many others."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
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


def test_stamps_racing_the_close_wait_for_it_or_do_nothing(tmp_path: Path) -> None:
    """A send's stamp runs in a worker thread, unawaited: a run closing its budget meanwhile
    waits for a stamp under way, and a stamp or release arriving later does nothing (closing
    under a thread still using the connection crashed the process)."""
    for round_ in range(20):
        store = BudgetStore.open(
            StateLocation.sqlite(tmp_path / f"state{round_}.sqlite"), "key-hash", tmp_path
        )
        tokens = [store.grant(100_000, 60.0)[1] for _ in range(200)]
        with ThreadPoolExecutor(4) as pool:
            stamps = [pool.submit(store.stamp, token) for token in tokens[:100]]
            releases = [pool.submit(store.release, token) for token in tokens[100:]]
            store.close()
            for done in (*stamps, *releases):
                assert done.result() is None  # no error from a call that found it closed
    store.stamp(tokens[0])  # after the close: nothing happens, nothing raises
    store.release(tokens[-1])
