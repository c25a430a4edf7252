"""Which export files a target has already processed: their content fingerprints, in the state store."""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType

from pipelines.core.state_location import StateLocation
from pipelines.state.state_migrations import open_state


class ProcessedExports:
    """Fingerprints of exports fully processed (nothing left to send) per target.

    ``where`` is the store (a location, or the path of an SQLite file). ``read_only`` (dry runs)
    never creates or changes the store: no store yet means nothing was processed yet.
    """

    def __init__(
        self, where: StateLocation | Path, target: str, *, read_only: bool = False
    ) -> None:
        location = where if isinstance(where, StateLocation) else StateLocation.sqlite(where)
        self.target = target
        self.read_only = read_only
        self._db = open_state(location, read_only=read_only)
        self._has_table = self._db is not None and self._db.table_exists("processed_exports")

    def __enter__(self) -> ProcessedExports:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._db is not None:
            self._db.close()

    def seen(self, print_: str) -> str | None:
        """The run id that processed this fingerprint, or None."""
        if self._db is None or not self._has_table:
            return None
        row = self._db.execute(
            "SELECT run_id FROM processed_exports WHERE target = ? AND fingerprint = ?",
            (self.target, print_),
        ).fetchone()
        return row[0] if row else None

    def mark(self, print_: str, path: Path, run_id: str, rows_read: int) -> None:
        """Remember that ``path`` (with this fingerprint) was processed to the end by ``run_id``."""
        if self.read_only or self._db is None:
            raise RuntimeError("processed exports opened read-only (a dry run marks nothing)")
        self._db.execute(
            """INSERT INTO processed_exports VALUES (?, ?, ?, ?, ?, ?)
               ON CONFLICT (target, fingerprint) DO UPDATE SET path = excluded.path,
                   run_id = excluded.run_id, rows_read = excluded.rows_read,
                   processed_at = excluded.processed_at""",
            (self.target, print_, str(path), run_id, rows_read, int(time.time())),
        )
