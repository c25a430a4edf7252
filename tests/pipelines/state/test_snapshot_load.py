"""Loading a target's key snapshot on two connections at once, against SQLite and PostgreSQL."""

from __future__ import annotations

import time

import numpy as np
import pytest

from pipelines.core.state_location import StateLocation
from pipelines.state.database import StateDB, connect_state
from pipelines.state.key_set import KeySnapshot
from pipelines.state.ledger import Ledger
from pipelines.state.ledger_schema import DONE, FAILED, IN_FLIGHT
from pipelines.state.snapshot_load import load_snapshot

TARGET = "https://api.stackone.com"


def _stored(location: StateLocation, rows: list[tuple[bytes, int, bytes | None]]) -> int:
    """A store holding these (key, outcome, body hash) rows for TARGET; its target id."""
    with Ledger(location, TARGET):
        pass  # the schema and the target row
    db = connect_state(location)
    try:
        target_id = int(db.execute("SELECT id FROM targets").fetchone()[0])
        with db.write():
            db.executemany(
                "INSERT INTO deliveries (target_id, key, outcome, body_hash, updated_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [(target_id, k, o, h, int(time.time())) for k, o, h in rows],
            )
    finally:
        db.close()
    return target_id


def _loaded(location: StateLocation, target_id: int, *, two: bool) -> KeySnapshot:
    db = connect_state(location)
    second: StateDB | None = connect_state(location) if two else None
    try:
        return load_snapshot(db, target_id, second)
    finally:
        db.close()
        if second is not None:
            second.close()


def _random_rows(n: int, first_bytes: range = range(256)) -> list[tuple[bytes, int, bytes | None]]:
    rng = np.random.default_rng(12)
    keys = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    keys[:, 0] = rng.choice(np.array(first_bytes, dtype=np.uint8), size=n)
    outcomes = rng.choice([DONE, DONE, DONE, FAILED, IN_FLIGHT], size=n)
    hashes = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    return [
        (k.tobytes(), int(o), None if i % 97 == 0 else h.tobytes())
        for i, (k, o, h) in enumerate(zip(keys, outcomes, hashes, strict=True))
    ]


@pytest.mark.parametrize("first_bytes", [range(256), range(0, 128), range(128, 256)])
def test_two_connections_load_what_one_does(state_store: StateLocation, first_bytes: range) -> None:
    """Keys in both halves of the key space, or in one only: the same snapshot either way."""
    rows = _random_rows(3000, first_bytes)
    target_id = _stored(state_store, rows)
    one = _loaded(state_store, target_id, two=False)
    two = _loaded(state_store, target_id, two=True)
    delivered = sorted((k, h) for k, o, h in rows if o == DONE)
    assert len(two.delivered.hi) == len(delivered)
    for got in (one, two):
        assert np.array_equal(got.delivered.hi, one.delivered.hi)
        assert np.array_equal(got.delivered.lo, one.delivered.lo)
        assert np.array_equal(got.bodies, one.bodies)
        assert np.array_equal(got.others.hi, one.others.hi)
        assert np.array_equal(got.other_status, one.other_status)
    # each delivered key is found, with the first 8 bytes of its body hash (zeros where none)
    keys = np.frombuffer(b"".join(k for k, _ in delivered), np.uint8).reshape(-1, 16)
    words = keys.view(">u8").reshape(-1, 2).astype(np.uint64)
    at = two.delivered.find(words[:, 0], words[:, 1])
    assert (at >= 0).all()
    firsts = [np.frombuffer((h or bytes(16))[:8], np.uint64)[0] for _, h in delivered]
    assert np.array_equal(two.bodies[at], np.array(firsts, np.uint64))
    assert len(two.others.hi) == sum(1 for _, o, _ in rows if o != DONE)


@pytest.mark.parametrize("bad_first", [0x10, 0xF0], ids=["lower-half", "upper-half"])
def test_a_malformed_key_fails_the_load_on_either_connection(
    state_store: StateLocation, bad_first: int
) -> None:
    """A key that is not 16 bytes raises from either side, and neither side is left waiting."""
    rows = _random_rows(500)
    rows.append((bytes([bad_first]) + b"short", DONE, bytes(16)))
    target_id = _stored(state_store, rows)
    with pytest.raises(RuntimeError, match="malformed keys in the ledger"):
        _loaded(state_store, target_id, two=True)
    with pytest.raises(RuntimeError, match="malformed keys in the ledger"):
        _loaded(state_store, target_id, two=False)


def test_an_empty_target_loads_empty(state_store: StateLocation) -> None:
    target_id = _stored(state_store, [])
    snapshot = _loaded(state_store, target_id, two=True)
    assert len(snapshot.delivered.hi) == 0
    assert len(snapshot.others.hi) == 0
