"""The small core every layer may use: run-level errors, settings, outcome names."""
