"""``lms-sync replay``: re-submit the fixed rows of dead-letter files, keeping their origin."""

from __future__ import annotations

from pipelines.cli.run_command import run_command, succeeded

__all__ = ["replay_command", "succeeded"]

replay_command = run_command(
    replay=True,
    sources_help="deadletter.parquet files (or the run folders holding them).",
    mapping_help="Mapping YAML the rows were first read with.",
    doc="""Re-submit the rows of dead-letter files after they were fixed.

    Rows keep their original source file and row, so a row that fails again lands in the new
    dead-letter file under its first address. A row dead-lettered as malformed_row stays so until
    its _dl_error_code is cleared (its fields may be shifted). Exit codes as for `run`.

    Example: lms-sync replay data/runs/20240501T020000Z-ab12/deadletter.parquet -m config/mappings/workday_learning.yaml
    """,
)
