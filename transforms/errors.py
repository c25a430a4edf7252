"""The exception tree of lms-sync. Row problems are values, never exceptions; these are run-level.

LmsSyncError                 base; ``retryable`` says whether trying again can help
├── MappingError             the mapping file is wrong (exit 2)           terminal
└── (pipelines.errors)       source, lock, API and auth errors           see there
"""

from __future__ import annotations


class LmsSyncError(Exception):
    """Base of every run-level error lms-sync raises."""

    retryable: bool = False
    exit_code: int = 2


class MappingError(LmsSyncError):
    """The mapping file names an unknown key, missing column, bad unit, timezone, … (exit 2)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key
