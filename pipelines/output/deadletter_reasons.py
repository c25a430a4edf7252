"""The dead-letter file as a table of reasons for a dashboard: error code, field and file:row of
each row, read from ``deadletter.parquet`` without a single value of the row (no personal data)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = ["MAX_REASON_ROWS", "deadletter_reasons"]

MAX_REASON_ROWS = 500  # a table artifact is for reading, not a copy of the file
_COLUMNS = ["_dl_error_code", "_dl_error_field", "_dl_stage", "_dl_source_file", "_dl_source_row"]


def deadletter_reasons(parquet: Path, limit: int = MAX_REASON_ROWS) -> list[dict[str, str]]:
    """Up to ``limit`` rows of (code, field, stage, file:row), most frequent code first."""
    if not parquet.exists():
        return []
    table = pq.read_table(parquet, columns=_COLUMNS)
    if table.num_rows == 0:
        return []
    counts = {
        row["values"]: row["counts"] for row in pc.value_counts(table["_dl_error_code"]).to_pylist()
    }
    rows = [
        {
            "code": code or "",
            "field": field or "",
            "stage": stage or "",
            "where": f"{Path(source or '').name}:{line}",
        }
        for code, field, stage, source, line in zip(
            *(table[c].to_pylist() for c in _COLUMNS), strict=True
        )
    ]
    rows.sort(key=lambda r: (-counts.get(r["code"] or None, 0), r["code"], r["where"]))
    return rows[:limit]
