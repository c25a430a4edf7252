"""Run outputs: run folder, retention, dead-letter writer, payloads, report."""
