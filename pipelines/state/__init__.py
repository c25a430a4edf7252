"""The state store: ledger, its SQL, locks, processed exports, user cache."""
