"""SQL that differs between SQLite and PostgreSQL, in one place: hex text of a key column."""

from __future__ import annotations

__all__ = ["hex_of"]


def hex_of(dialect: str, column: str) -> str:
    """Lower-case hex text of a BLOB/BYTEA column."""
    return f"lower(hex({column}))" if dialect == "sqlite" else f"encode({column}, 'hex')"
