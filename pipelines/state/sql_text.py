"""SQL that differs between SQLite and PostgreSQL, in one place: hex text of a key column, the
store's clock, and the index a statement on a few outcomes' rows must use."""

from __future__ import annotations

__all__ = ["by_outcome", "hex_of", "now_epoch"]


def hex_of(dialect: str, column: str) -> str:
    """Lower-case hex text of a BLOB/BYTEA column."""
    return f"lower(hex({column}))" if dialect == "sqlite" else f"encode({column}, 'hex')"


def now_epoch(dialect: str) -> str:
    """The store's clock as unix seconds (PostgreSQL's, shared by every machine; SQLite's is the
    machine's own, and an SQLite store is on one machine)."""
    if dialect == "sqlite":
        return "((julianday('now') - 2440587.5) * 86400.0)"
    return "extract(epoch FROM clock_timestamp())::double precision"


def by_outcome(dialect: str) -> str:
    """``INDEXED BY`` the (target, outcome) index in SQLite, after the table name of a statement
    on the few keys of one outcome (in flight): without statistics SQLite may pick the primary
    key and scan every key of the target (seconds for millions). PostgreSQL plans from its own
    statistics."""
    return " INDEXED BY deliveries_outcome" if dialect == "sqlite" else ""
