"""SQL that differs between SQLite and PostgreSQL, in one place: hex text of a key column."""

from __future__ import annotations

__all__ = ["hex_of", "now_epoch"]


def hex_of(dialect: str, column: str) -> str:
    """Lower-case hex text of a BLOB/BYTEA column."""
    return f"lower(hex({column}))" if dialect == "sqlite" else f"encode({column}, 'hex')"


def now_epoch(dialect: str) -> str:
    """The store's clock as unix seconds (PostgreSQL's, shared by every machine; SQLite's is the
    machine's own, and an SQLite store is on one machine)."""
    if dialect == "sqlite":
        return "((julianday('now') - 2440587.5) * 86400.0)"
    return "extract(epoch FROM clock_timestamp())::double precision"
