"""Ledger status codes of whole key columns: searching the target's key snapshot (on any
thread), and asking the store again about keys written since (on the ledger's)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pipelines.state.database import StateDB
from pipelines.state.key_bytes import halves
from pipelines.state.key_set import KeySnapshot
from pipelines.state.ledger_schema import (
    CHANGED,
    DELIVERED,
    DONE,
    NEW,
    STATUS_OF,
)

__all__ = ["LookedUp", "look_up", "status_codes"]


@dataclass(frozen=True)
class LookedUp:
    """Keys (and body hashes) answered against the loaded snapshot alone: pure numpy, so any
    thread may do it; ``status_codes`` then asks the store about keys written since."""

    key_bytes: npt.NDArray[np.uint8]
    hash_bytes: npt.NDArray[np.uint8]
    hash_valid: npt.NDArray[np.bool_]
    codes: npt.NDArray[np.int8]
    delivered_at: npt.NDArray[np.intp]  # position among the snapshot's delivered keys, -1: not

    def take(self, rows: npt.NDArray[np.intp] | npt.NDArray[np.bool_]) -> LookedUp:
        """The answers of those rows only."""
        return LookedUp(
            self.key_bytes[rows],
            self.hash_bytes[rows],
            self.hash_valid[rows],
            self.codes[rows],
            self.delivered_at[rows],
        )


def look_up(
    known: KeySnapshot,
    key_bytes: npt.NDArray[np.uint8],
    hash_bytes: npt.NDArray[np.uint8],
    hash_valid: npt.NDArray[np.bool_],
) -> LookedUp:
    """Status code of every key against the snapshot as loaded; an invalid (null) body hash
    never counts as a change."""
    hi, lo = halves(key_bytes)
    codes = np.full(len(hi), NEW, dtype=np.int8)
    delivered_at = known.delivered.find(hi, lo)
    hit = delivered_at >= 0
    first_words = np.ascontiguousarray(hash_bytes).view(np.uint64).reshape(-1, 2)[:, 0]
    same = (known.bodies[delivered_at[hit]] == first_words[hit]) | ~hash_valid[hit]
    codes[hit] = np.where(same, DELIVERED, CHANGED)
    at = known.others.find(hi, lo)
    hit = at >= 0
    codes[hit] = known.other_status[at[hit]]
    return LookedUp(key_bytes, hash_bytes, hash_valid, codes, delivered_at)


def status_codes(
    db: StateDB, target_id: int, known: KeySnapshot, looked: LookedUp
) -> npt.NDArray[np.int8]:
    """The looked-up codes, with keys written since the snapshot asked of the store again."""
    codes = looked.codes.copy()
    mine = known.written_since(halves(looked.key_bytes)[0])
    if mine.any():
        codes[mine] = _codes_in_db(
            db, target_id, looked.key_bytes[mine], looked.hash_bytes[mine], looked.hash_valid[mine]
        )
    return codes


def _codes_in_db(
    db: StateDB,
    target_id: int,
    key_bytes: npt.NDArray[np.uint8],
    hash_bytes: npt.NDArray[np.uint8],
    hash_valid: npt.NDArray[np.bool_],
) -> npt.NDArray[np.int8]:
    """Status of keys this instance has written since the snapshot, read back from the store."""
    state = _stored(db, target_id, [k.tobytes() for k in key_bytes])
    codes = np.full(len(key_bytes), NEW, dtype=np.int8)
    for i, key in enumerate(key_bytes):
        found = state.get(key.tobytes())
        if found is None:
            continue
        outcome, body = found
        if outcome == DONE:
            same = not hash_valid[i] or body == hash_bytes[i].tobytes()
            codes[i] = DELIVERED if same else CHANGED
        else:
            codes[i] = STATUS_OF[outcome]
    return codes


def _stored(db: StateDB, target_id: int, keys: list[bytes]) -> dict[bytes, tuple[int, bytes]]:
    """(outcome, body hash) of those keys the store holds: SQLite joins a TEMP table of the
    keys; PostgreSQL takes them as one array parameter."""
    if db.dialect == "postgres":
        rows = db.execute(
            "SELECT key, outcome, body_hash FROM deliveries WHERE target_id = ? AND key = ANY(?)",
            (target_id, keys),
        )
        return {bytes(key): (outcome, body) for key, outcome, body in rows}
    db.execute("CREATE TEMP TABLE IF NOT EXISTS batch_keys (key BLOB PRIMARY KEY) WITHOUT ROWID")
    with db.read():
        db.execute("DELETE FROM batch_keys")
        db.executemany("INSERT OR IGNORE INTO batch_keys VALUES (?)", ((k,) for k in keys))
        found = {
            key: (outcome, body)
            for key, outcome, body in db.execute(
                """SELECT d.key, d.outcome, d.body_hash FROM batch_keys b
                   JOIN deliveries d ON d.target_id = ? AND d.key = b.key""",
                (target_id,),
            )
        }
        db.execute("DELETE FROM batch_keys")
    return found
