"""Key claims: a run writes the keys it is about to send ``in_flight`` with a lease (owner run and
expiry on the store's clock) in one atomic conditional write. A key another run holds under a live
lease is not claimed (the caller leaves its row pending, ``claimed_elsewhere``); only an expired
claim, whose run is gone, can be taken over, after reconciliation. A run renews its leases every
third of the lease; it never relies on a process id or a host staying alive.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from pipelines.state.database import StateDB
from pipelines.state.ledger_schema import FAILED, IN_FLIGHT
from pipelines.state.sql_text import by_outcome, now_epoch

__all__ = ["claim_keys", "release_claims", "renew_claims"]

_CLAIM_SQL = f"""
INSERT INTO deliveries (target_id, key, outcome, body_hash, run, updated_at, account_id, user_id,
                        lease_until)
VALUES (?, ?, {IN_FLIGHT}, ?, ?, ?, ?, ?, {{now}} + ?)
ON CONFLICT (target_id, key) DO UPDATE SET
    account_id = coalesce(excluded.account_id, deliveries.account_id),
    user_id = coalesce(excluded.user_id, deliveries.user_id),
    prev_outcome = CASE WHEN deliveries.outcome = {IN_FLIGHT}
                             AND deliveries.run IS NOT DISTINCT FROM excluded.run
                        THEN deliveries.prev_outcome ELSE deliveries.outcome END,
    outcome = {IN_FLIGHT}, body_hash = excluded.body_hash, run = excluded.run,
    updated_at = excluded.updated_at, lease_until = excluded.lease_until
WHERE deliveries.outcome = {FAILED}
   OR (deliveries.outcome = {IN_FLIGHT}
       AND (deliveries.run IS NOT DISTINCT FROM excluded.run
            OR deliveries.lease_until IS NULL OR deliveries.lease_until < {{now}}))
"""


def claim_keys(
    db: StateDB,
    target_id: int,
    run_ref: int,
    key_bytes: npt.NDArray[np.uint8],
    hash_bytes: npt.NDArray[np.uint8],
    destinations: Sequence[tuple[str | None, str | None]],
    lease_seconds: float,
    now: int,
) -> set[bytes]:
    """Claim the keys (in key order) inside the caller's write transaction; the ones claimed."""
    if len(key_bytes) == 0:
        return set()
    order = np.lexsort(key_bytes.T[::-1])  # neighbouring keys share B-tree pages
    db.executemany(
        _CLAIM_SQL.format(now=now_epoch(db.dialect)),
        (
            (target_id, key_bytes[i].tobytes(), hash_bytes[i].tobytes(), run_ref, now,
             *destinations[i], lease_seconds)
            for i in order
        ),
    )  # fmt: skip
    keys = [k.tobytes() for k in key_bytes]
    marks = ",".join("?" * len(keys))
    rows = db.execute(
        f"""SELECT key FROM deliveries WHERE target_id = ? AND run = ?
            AND outcome = {IN_FLIGHT} AND key IN ({marks})""",
        (target_id, run_ref, *keys),
    )
    return {bytes(key) for (key,) in rows}


def renew_claims(db: StateDB, target_id: int, run_ref: int, lease_seconds: float) -> int:
    """Extend the leases of every key the run holds in flight; how many it holds."""
    cursor = db.execute(
        f"""UPDATE deliveries{by_outcome(db.dialect)} SET lease_until = {now_epoch(db.dialect)} + ?
            WHERE target_id = ? AND run = ? AND outcome = {IN_FLIGHT}""",
        (lease_seconds, target_id, run_ref),
    )
    return int(cursor.rowcount)


def release_claims(db: StateDB, target_id: int, run_ref: int) -> None:
    """The run is over: its keys still in flight (sent, no answer) are in doubt at once."""
    db.execute(
        f"""UPDATE deliveries{by_outcome(db.dialect)} SET lease_until = 0
            WHERE target_id = ? AND run = ? AND outcome = {IN_FLIGHT}""",
        (target_id, run_ref),
    )
