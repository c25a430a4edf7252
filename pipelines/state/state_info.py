"""What a state store holds: where it is, its schema version and history, rows per table and keys
per outcome and target (read only: looking never creates or migrates a store)."""

from __future__ import annotations

from typing import Any

from pipelines.core.state_location import StateLocation
from pipelines.state.ledger_schema import OUTCOME_NAMES
from pipelines.state.state_copy import table_counts
from pipelines.state.state_migrations import open_state, schema_version
from pipelines.state.state_schema import SCHEMA_VERSION

__all__ = ["state_info"]


def state_info(location: StateLocation) -> dict[str, Any]:
    """The store, its schema version (and this tool's), rows per table, keys per target."""
    info: dict[str, Any] = {"store": location.display, "kind": location.kind}
    db = open_state(location, read_only=True)
    if db is None:
        return {**info, "exists": False}
    try:
        info |= {
            "exists": True,
            "schema_version": schema_version(db),
            "tool_version": SCHEMA_VERSION,
        }
        info["tables"] = table_counts(db)
        targets: dict[str, dict[str, int]] = {}
        for url, outcome, n in db.execute(
            """SELECT t.base_url, d.outcome, count(*) FROM deliveries d
               JOIN targets t ON t.id = d.target_id GROUP BY t.base_url, d.outcome"""
        ):
            targets.setdefault(url, dict.fromkeys(OUTCOME_NAMES.values(), 0))
            targets[url][OUTCOME_NAMES[outcome]] = int(n)
        info["targets"] = targets
        if db.table_exists("state_version"):
            info["history"] = [
                {"version": v, "applied_at": at, "note": note}
                for v, at, note in db.execute(
                    "SELECT version, applied_at, note FROM state_version ORDER BY applied_at"
                )
            ]
    finally:
        db.close()
    return info
