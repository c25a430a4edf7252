"""Loading a target's key snapshot from the store, on two connections at once.

The delivered keys and their body hashes come in 256 aggregate queries (one blob per key-prefix
range). The store's own loop over the rows is the cost (SQLite: ~0.4 µs a key, ~4.5 s for ten
million on one connection), so a second connection reads half of the ranges on a thread. Each
side counts its keys first, so the arrays are allocated once, at their final size.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt

from pipelines.state.database import StateDB
from pipelines.state.key_bytes import halves
from pipelines.state.key_set import KeySet, KeySnapshot
from pipelines.state.ledger_schema import DONE, LOAD_SQL, STATUS_OF

__all__ = ["load_snapshot"]

Words = npt.NDArray[np.uint64]
Columns = tuple[Words, Words, Words]  # key halves (hi, lo) and the body hashes' first 8 bytes
_LOWER, _UPPER = range(0, 128), range(128, 256)  # key-prefix ranges of the two connections
_COUNT_SQL = f"""SELECT count(*) FROM deliveries
WHERE target_id = ? AND outcome = {DONE} AND key >= ? AND key < ?"""


def load_snapshot(db: StateDB, target_id: int, second: StateDB | None = None) -> KeySnapshot:
    """The target's keys: delivered ones with body hashes, the few others row by row.

    With ``second`` (another connection to the same store), half the delivered keys are read
    through it at the same time. Each connection reads in one read transaction; the two begin
    a moment apart, which serves as well as one: the snapshot only spares the store questions
    (a key is sent only once the store grants its claim, and keys this instance writes later
    are asked of the store again).
    """
    if second is None:
        with db.read():
            columns = _allocated(_count(db, target_id, range(256)))
            _fill(db, target_id, range(256), columns)
            other_rows = _other_rows(db, target_id)
    else:
        columns, other_rows = _read_in_two(db, second, target_id)
    hi, lo, bodies = columns
    delivered, order = KeySet.build(hi, lo)
    if order is not None:
        bodies = bodies[order]
    other_keys = np.frombuffer(b"".join(k for k, _ in other_rows), np.uint8).reshape(-1, 16)
    other_status = np.array([STATUS_OF[o] for _, o in other_rows], dtype=np.int8)
    others, other_order = KeySet.build(*halves(other_keys))
    if other_order is not None:
        other_status = other_status[other_order]
    return KeySnapshot(delivered, bodies, others, other_status)


def _read_in_two(db: StateDB, second: StateDB, target_id: int) -> tuple[Columns, list[Any]]:
    """The lower ranges through ``db`` here, the upper ones through ``second`` on a thread
    (a connection's transaction stays on the thread that began it)."""
    counted: Future[int] = Future()
    given: Future[Columns] = Future()
    with ThreadPoolExecutor(1, thread_name_prefix="snapshot") as pool:
        upper = pool.submit(_read_upper, second, target_id, counted, given)
        try:
            with db.read():
                lower = _count(db, target_id, _LOWER)
                columns = hi, lo, bodies = _allocated(lower + counted.result())
                given.set_result((hi[lower:], lo[lower:], bodies[lower:]))
                _fill(db, target_id, _LOWER, (hi[:lower], lo[:lower], bodies[:lower]))
                other_rows = _other_rows(db, target_id)
        except BaseException as exc:
            if not given.done():
                given.set_exception(exc)  # the thread gives up too
            with contextlib.suppress(BaseException):
                upper.result()  # this error is the one raised
            raise
        upper.result()
    return columns, other_rows


def _read_upper(db: StateDB, target_id: int, counted: Future[int], given: Future[Columns]) -> None:
    """Count the upper ranges' keys, then fill the arrays the caller allocated for them."""
    try:
        if db.dialect == "sqlite":  # one pass over the keys: a page cache would only fill up
            db.execute("PRAGMA cache_size = -1024")
        with db.read():
            counted.set_result(_count(db, target_id, _UPPER))
            _fill(db, target_id, _UPPER, given.result())
    except BaseException as exc:
        if not counted.done():
            counted.set_exception(exc)
        raise


def _bounds(firsts: range) -> tuple[bytes, bytes]:
    """The keys of those first bytes: ``lower <= key < upper``."""
    last = firsts[-1]
    return bytes([firsts[0]]), bytes([last + 1]) if last < 255 else b"\xff" * 17


def _count(db: StateDB, target_id: int, firsts: range) -> int:
    return int(db.execute(_COUNT_SQL, (target_id, *_bounds(firsts))).fetchone()[0])


def _allocated(n: int) -> Columns:
    return np.empty(n, np.uint64), np.empty(n, np.uint64), np.empty(n, np.uint64)


def _fill(db: StateDB, target_id: int, firsts: range, columns: Columns) -> None:
    """Fill ``columns`` (exactly as long as the count) from the key-prefix ranges, in order."""
    hi, lo, bodies = columns
    filled = 0
    for first in firsts:
        key_blob, body_blob, n = db.execute(
            LOAD_SQL[db.dialect], (target_id, *_bounds(range(first, first + 1)))
        ).fetchone()
        if not n:
            continue
        if filled + n > len(hi) or len(key_blob) != 16 * n or len(body_blob) != 16 * n:
            raise RuntimeError(f"{db.where}: malformed keys in the ledger")
        part = slice(filled, filled + n)
        hi[part], lo[part] = halves(np.frombuffer(key_blob, np.uint8).reshape(n, 16))
        bodies[part] = np.frombuffer(body_blob, np.uint64).reshape(n, 2)[:, 0]
        filled += n
    if filled != len(hi):
        raise RuntimeError(f"{db.where}: malformed keys in the ledger")


def _other_rows(db: StateDB, target_id: int) -> list[Any]:
    """(key, outcome) of the target's keys in any state but delivered (few)."""
    return db.execute(
        f"""SELECT key, outcome FROM deliveries WHERE target_id = ?
            AND outcome IN ({",".join(str(c) for c in STATUS_OF)})""",
        (target_id,),
    ).fetchall()
