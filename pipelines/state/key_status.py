"""Ledger status codes of whole key columns: loading a target's key snapshot from the store in
a few aggregate queries, searching it (on any thread), and asking the store again about keys
written since (on the ledger's)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pipelines.state.database import StateDB
from pipelines.state.key_bytes import halves
from pipelines.state.key_set import KeySet, KeySnapshot
from pipelines.state.ledger_schema import (
    CHANGED,
    DELIVERED,
    DONE,
    LOAD_SQL,
    NEW,
    STATUS_OF,
)

__all__ = ["LookedUp", "load_snapshot", "look_up", "status_codes"]


def load_snapshot(db: StateDB, target_id: int) -> KeySnapshot:
    """Read the target's keys in one read transaction: delivered ones with body hashes in
    256 aggregate queries (one blob per key-prefix range), the few others row by row."""
    with db.read():
        hi, lo, bodies = _delivered_keys(db, target_id)
        other_rows = db.execute(
            f"""SELECT key, outcome FROM deliveries WHERE target_id = ?
                AND outcome IN ({",".join(str(c) for c in STATUS_OF)})""",
            (target_id,),
        ).fetchall()
    delivered, order = KeySet.build(hi, lo)
    if order is not None:
        bodies = bodies[order]
    other_keys = np.frombuffer(b"".join(k for k, _ in other_rows), np.uint8).reshape(-1, 16)
    other_status = np.array([STATUS_OF[o] for _, o in other_rows], dtype=np.int8)
    others, other_order = KeySet.build(*halves(other_keys))
    if other_order is not None:
        other_status = other_status[other_order]
    return KeySnapshot(delivered, bodies, others, other_status)


def _delivered_keys(
    db: StateDB, target_id: int
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """Halves of the target's delivered keys and the first 8 bytes of their body hashes (as
    ``KeySnapshot.bodies``), one key-prefix range a query."""
    total = db.execute(
        f"SELECT count(*) FROM deliveries WHERE target_id = ? AND outcome = {DONE}",
        (target_id,),
    ).fetchone()[0]
    hi = np.empty(total, dtype=np.uint64)
    lo = np.empty(total, dtype=np.uint64)
    bodies = np.empty(total, dtype=np.uint64)
    filled = 0
    for first in range(256):
        upper = bytes([first + 1]) if first < 255 else b"\xff" * 17
        key_blob, body_blob, n = db.execute(
            LOAD_SQL[db.dialect], (target_id, bytes([first]), upper)
        ).fetchone()
        if not n:
            continue
        if filled + n > total or len(key_blob) != 16 * n or len(body_blob) != 16 * n:
            raise RuntimeError(f"{db.where}: malformed keys in the ledger")
        part = slice(filled, filled + n)
        hi[part], lo[part] = halves(np.frombuffer(key_blob, np.uint8).reshape(n, 16))
        bodies[part] = np.frombuffer(body_blob, np.uint64).reshape(n, 2)[:, 0]
        filled += n
    return hi[:filled], lo[:filled], bodies[:filled]


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
