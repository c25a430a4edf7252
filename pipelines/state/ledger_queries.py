"""Read-only questions to the ledger about one target: one key's record, keys per outcome,
keys left in doubt, and the other targets the file holds keys for."""

from __future__ import annotations

from typing import Any

from pipelines.state.database import StateDB
from pipelines.state.ledger_schema import IN_FLIGHT, OUTCOME_NAMES
from pipelines.state.sql_text import by_outcome, hex_of, now_epoch

__all__ = ["key_record", "keys_in_doubt", "other_targets", "outcome_counts"]


def key_record(db: StateDB, target: str, key: str) -> dict[str, Any] | None:
    """Everything the ledger holds about one key (hex) of the target, or None."""
    cursor = db.execute(
        "SELECT * FROM deliveries_readable WHERE target = ? AND key = ?", (target, key.lower())
    )
    row = cursor.fetchone()
    if row is None:
        return None
    return dict(zip([c[0] for c in cursor.description], row, strict=True))


def outcome_counts(db: StateDB, target_id: int) -> dict[str, int]:
    """Keys per stored outcome (every outcome listed, zeros included)."""
    result = dict.fromkeys(OUTCOME_NAMES.values(), 0)
    for code, n in db.execute(
        "SELECT outcome, count(*) FROM deliveries WHERE target_id = ? GROUP BY outcome",
        (target_id,),
    ):
        result[OUTCOME_NAMES[code]] = n
    return result


def keys_in_doubt(db: StateDB, target_id: int, run_id: str | None) -> list[str]:
    """Keys (hex, sorted) left in_flight by any run other than ``run_id`` whose claim expired
    (the run is gone): maybe sent."""
    rows = db.execute(
        f"""SELECT {hex_of(db.dialect, "d.key")} FROM deliveries d{by_outcome(db.dialect)}
            LEFT JOIN runs r ON r.id = d.run
            WHERE d.target_id = ? AND d.outcome = {IN_FLIGHT} AND r.run_id IS DISTINCT FROM ?
            AND (d.lease_until IS NULL OR d.lease_until < {now_epoch(db.dialect)})
            ORDER BY d.key""",
        (target_id, run_id),
    )
    return [key for (key,) in rows]


def other_targets(db: StateDB, target: str) -> list[str]:
    """Targets other than ``target`` that the ledger file holds keys for."""
    rows = db.execute(
        """SELECT base_url FROM targets t WHERE base_url != ?
           AND EXISTS (SELECT 1 FROM deliveries d WHERE d.target_id = t.id) ORDER BY base_url""",
        (target,),
    )
    return [url for (url,) in rows]
