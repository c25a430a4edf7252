"""The delivery ledger (DESIGN §7): per target and idempotency key, what happened to it, in the
state store (an SQLite file or PostgreSQL). Keys are 16-byte BLOBs, not 32-char hex: half the
bytes in the table and its index, memcmp comparisons, and a block of concatenated keys loads
straight into a numpy array. ``classify`` works on whole columns against an in-memory snapshot of
the target's keys (sorted 64-bit halves, binary search), loaded once in a few aggregate queries;
keys this instance wrote since are looked up again, so the answer is never stale for its writes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.core.state_location import StateLocation
from pipelines.state.claims import claim_keys, release_claims, renew_claims
from pipelines.state.database import StateDB, closing_on_error, connect_state
from pipelines.state.doubts import Doubt, doubts_of
from pipelines.state.key_bytes import as_16_bytes, as_arrow, halves
from pipelines.state.key_results import KeyResult, record_params
from pipelines.state.key_set import KeySnapshot
from pipelines.state.key_status import LookedUp, look_up, status_codes
from pipelines.state.ledger_queries import key_record, keys_in_doubt, other_targets, outcome_counts
from pipelines.state.ledger_schema import (
    FAILED,
    GAVE_UP_CODE,
    IN_FLIGHT,
    RECORD_SQL,
    STATUSES,
    normalise_target,
    run_ref,
    target_ref,
)
from pipelines.state.snapshot_load import load_snapshot
from pipelines.state.state_migrations import open_state

__all__ = ["Ledger"]

_WRITE_BATCH = 10_000


class Ledger:
    """Delivery state of one target in one state store; use as a context manager.

    ``where`` is the store: a location, or the path of an SQLite file.
    """

    def __init__(self, where: StateLocation | Path | str, target: str) -> None:
        self.location = where if isinstance(where, StateLocation) else StateLocation.sqlite(where)
        self.where = self.location.display  # names the store in messages
        self.target = normalise_target(target)
        self._conn: StateDB | None = None
        self._target_id = 0
        self._run: str | None = None
        self._run_refs: dict[str, int] = {}
        self._known: KeySnapshot | None = None

    # -- connection ---------------------------------------------------------------------------

    def open(self) -> Ledger:
        """Connect, creating the schema or migrating an older one (StateVersionError: newer)."""
        if self._conn is not None:
            return self
        self._conn = open_state(self.location)
        with closing_on_error(self), self._write() as db:
            self._target_id = target_ref(db, self.target)
        return self

    def close(self) -> None:
        """Close the connection."""
        if self._conn is None:
            return
        self._run = None
        self._conn.close()
        self._conn = None
        self._known = None

    def __enter__(self) -> Ledger:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def _db(self) -> StateDB:
        if self._conn is None:
            raise RuntimeError("the ledger is not open: use `with Ledger(where, target) as ledger`")
        return self._conn

    def _write(self) -> AbstractContextManager[StateDB]:
        """One write transaction, taken up front so two writers queue instead of deadlocking."""
        return self._db.write()

    # -- the run writing --------------------------------------------------------------------

    def begin(self, run_id: str) -> None:
        """Write delivery state as ``run_id`` from now on (runs on one target run side by side:
        each claims the keys it sends, see ``claim``)."""
        with self._write() as db:
            self._run_ref(db, run_id)
        self._run = run_id

    def end(self) -> None:
        """The run is over: what it left in flight is in doubt for the next run at once."""
        if self._run is not None and self._conn is not None:
            with self._write() as db:
                release_claims(db, self._target_id, self._run_ref(db, self._run))
        self._run = None

    def _require_run(self) -> str:
        if self._run is None:
            raise RuntimeError("begin() a run before writing delivery state")
        return self._run

    def _run_ref(self, db: StateDB, run_id: str) -> int:
        ref = self._run_refs.get(run_id)
        if ref is None:
            ref = self._run_refs[run_id] = run_ref(db, run_id)
        return ref

    # -- reading ------------------------------------------------------------------------------

    def classify(self, keys: pa.Array | pa.ChunkedArray, body_hashes: pa.Array) -> pa.Array:
        """Ledger status of every key (a ``STATUSES`` string), compared with its body hash.

        Keys and hashes are hex BLAKE2b-128 strings or 16-byte binaries; a null hash never
        counts as a change.
        """
        return self.classify_looked_up(self.look_up(keys, body_hashes))

    def look_up(self, keys: pa.Array | pa.ChunkedArray, body_hashes: pa.Array) -> LookedUp:
        """``classify`` against the loaded snapshot alone: no store access, so safe on another
        thread once ``preload`` has returned; ``classify_looked_up`` finishes it."""
        key_bytes, _ = as_16_bytes(keys, "keys", nulls=False)
        hash_bytes, hash_valid = as_16_bytes(body_hashes, "body_hashes", nulls=True)
        if len(key_bytes) != len(hash_bytes):
            raise ValueError(f"{len(key_bytes)} keys but {len(hash_bytes)} body hashes")
        return look_up(self._snapshot(), key_bytes, hash_bytes, hash_valid)

    def classify_looked_up(self, looked: LookedUp) -> pa.Array:
        """The statuses of looked-up keys, those written since the snapshot read from the store."""
        codes = status_codes(self._db, self._target_id, self._snapshot(), looked)
        return pc.take(pa.array(STATUSES, pa.string()), pa.array(codes))

    @property
    def delivered_keys(self) -> int:
        """How many delivered keys the snapshot holds (``LookedUp.delivered_at`` is below it)."""
        return len(self._snapshot().delivered.hi)

    def lookup(self, key: str) -> dict[str, Any] | None:
        """Everything the ledger holds about one key (hex), or None."""
        return key_record(self._db, self.target, key)

    def counts(self) -> dict[str, int]:
        """Keys per stored outcome (every outcome listed, zeros included)."""
        return outcome_counts(self._db, self._target_id)

    def in_doubt(self, run_id: str | None = None) -> list[str]:
        """Keys (hex, sorted) left in_flight by any run other than ``run_id``: maybe sent."""
        return keys_in_doubt(self._db, self._target_id, run_id)

    def doubts(self, keys: Sequence[str]) -> dict[str, Doubt]:
        """What the ledger knows of those ``keys`` (hex) that are in_flight: where and when sent."""
        return doubts_of(self._db, self._target_id, keys)

    def other_targets(self) -> list[str]:
        """Other targets this ledger file holds keys for (a hint when this one has none)."""
        return other_targets(self._db, self.target)

    # -- writing ------------------------------------------------------------------------------

    def claim(
        self, keys: pa.Array | Sequence[str], body_hashes: pa.Array | Sequence[str],
        destinations: Sequence[tuple[str | None, str | None]] | None = None,
        lease_seconds: float = 120.0,
    ) -> set[str]:  # fmt: skip
        """Write-ahead claim: the keys about to be sent go in_flight for this run with a lease, in
        one transaction before any request; the keys (hex) claimed, never one another run holds
        under a live lease. ``destinations`` gives each key's (account id, user id in the path)."""
        run = self._require_run()
        key_bytes, _ = as_16_bytes(as_arrow(keys), "keys", nulls=False)
        hash_bytes, _ = as_16_bytes(as_arrow(body_hashes), "body_hashes", nulls=False)
        if len(key_bytes) != len(hash_bytes):
            raise ValueError(f"{len(key_bytes)} keys but {len(hash_bytes)} body hashes")
        where: Sequence[tuple[str | None, str | None]] = destinations or [(None, None)] * len(
            key_bytes
        )
        with self._write() as db:
            ref = self._run_ref(db, run)
            claimed = claim_keys(
                db, self._target_id, ref, key_bytes, hash_bytes, where, lease_seconds,
                int(time.time()),
            )  # fmt: skip
        self._written(key_bytes)
        return {key.hex() for key in claimed}

    def renew(self, lease_seconds: float) -> int:
        """Extend this run's leases (every third of the lease); how many keys it holds."""
        run = self._require_run()
        with self._write() as db:
            return renew_claims(db, self._target_id, self._run_ref(db, run), lease_seconds)

    def record(self, results: Iterable[KeyResult], run_id: str | None = None) -> None:
        """Write outcomes as they complete, committing every few thousand keys."""
        current = self._require_run()
        run = run_id or current
        batch: list[dict[str, Any]] = []
        for result in results:
            batch.append(record_params(result))
            if len(batch) >= _WRITE_BATCH:
                self._write_records(batch, run)
                batch = []
        if batch:
            self._write_records(batch, run)

    def unmark(self, keys: pa.Array | Sequence[str]) -> int:
        """Keys marked in_flight but never sent go back to what they were (new keys vanish)."""
        key_bytes, _ = as_16_bytes(as_arrow(keys), "keys", nulls=False)
        rows = [(self._target_id, k.tobytes()) for k in key_bytes]
        with self._write() as db:
            gone = db.executemany(
                f"""DELETE FROM deliveries WHERE target_id = ? AND key = ?
                    AND outcome = {IN_FLIGHT} AND prev_outcome IS NULL""",
                rows,
            )
            back = db.executemany(
                f"""UPDATE deliveries SET outcome = prev_outcome, prev_outcome = NULL
                    WHERE target_id = ? AND key = ? AND outcome = {IN_FLIGHT}
                    AND prev_outcome IS NOT NULL""",
                rows,
            )
        self._written(key_bytes)
        return gone + back

    def retry_failed(self) -> int:
        """Lift ``gave_up``: those keys are retried again, with a fresh count of failed runs."""
        with self._write() as db:
            n = db.execute(
                f"""UPDATE deliveries SET outcome = {FAILED}, failed_runs = 0
                    WHERE target_id = ? AND outcome = {GAVE_UP_CODE}""",
                (self._target_id,),
            ).rowcount
        self._known = None
        return n

    def forget(self, keys: pa.Array | Sequence[str]) -> int:
        """Drop keys from the ledger (they count as new again); returns how many were there."""
        key_bytes, _ = as_16_bytes(as_arrow(keys), "keys", nulls=False)
        with self._write() as db:
            n = db.executemany(
                "DELETE FROM deliveries WHERE target_id = ? AND key = ?",
                ((self._target_id, k.tobytes()) for k in key_bytes),
            )
        self._written(key_bytes)
        return n

    def _write_records(self, batch: list[dict[str, Any]], run_id: str) -> None:
        now = int(time.time())
        with self._write() as db:
            ref = self._run_ref(db, run_id)
            for params in batch:
                failed = bool(params["lfr"])
                params.update(
                    t=self._target_id, run=ref, now=now, lfr=ref if failed else None, failed=+failed
                )
            db.executemany(RECORD_SQL, batch)
        keys = np.frombuffer(b"".join(p["k"] for p in batch), dtype=np.uint8).reshape(-1, 16)
        self._written(keys)

    # -- the in-memory snapshot ----------------------------------------------------------------

    def preload(self) -> None:
        """Load the delivered keys now (seconds for millions), e.g. in a thread before sending."""
        self._snapshot()

    def _snapshot(self) -> KeySnapshot:
        if self._known is None:
            second = connect_state(self.location)  # reads half of the keys at the same time
            try:
                self._known = load_snapshot(self._db, self._target_id, second)
            finally:
                second.close()
        return self._known

    def _written(self, key_bytes: npt.NDArray[np.uint8]) -> None:
        if self._known is not None:
            self._known.wrote(halves(key_bytes)[0])
