"""The state store (SQLite or PostgreSQL): ledger and its SQL, locks, processed exports, user cache, schema and migrations."""
