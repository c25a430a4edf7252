"""Keys in doubt (left ``in_flight`` by a run that never learnt their outcome), as the ledger
knows them: the account and path user id they were sent to, and when they went in flight."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pipelines.state.database import StateDB
from pipelines.state.ledger_schema import IN_FLIGHT
from pipelines.state.sql_text import hex_of

__all__ = ["Doubt", "doubts_of"]

_QUERY_BATCH = 500  # keys per query (SQLite allows 32766 parameters; small keeps plans cheap)


@dataclass(frozen=True)
class Doubt:
    """One key in doubt; ``account_id``/``user_id`` are None for keys written before schema 2."""

    key: str
    account_id: str | None
    user_id: str | None
    in_flight_since: datetime


def doubts_of(db: StateDB, target_id: int, keys: Sequence[str]) -> dict[str, Doubt]:
    """The in_flight ones among ``keys`` (hex) of the target, by key."""
    found: dict[str, Doubt] = {}
    for start in range(0, len(keys), _QUERY_BATCH):
        part = [bytes.fromhex(key) for key in keys[start : start + _QUERY_BATCH]]
        marks = ",".join("?" * len(part))
        rows = db.execute(
            f"""SELECT {hex_of(db.dialect, "key")}, account_id, user_id, updated_at FROM deliveries
                WHERE target_id = ? AND outcome = {IN_FLIGHT} AND key IN ({marks})""",
            (target_id, *part),
        )
        for key, account_id, user_id, since in rows:
            found[key] = Doubt(key, account_id, user_id, datetime.fromtimestamp(since, UTC))
    return found
