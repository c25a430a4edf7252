"""A ledger written by a newer lms-sync is refused with a clear error (exit 2), never a crash."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from pipelines.core.errors import StateVersionError
from pipelines.state.ledger import Ledger
from pipelines.state.state_schema import SCHEMA_VERSION

TARGET = "https://api.stackone.com"


def newer_ledger(path: Path) -> Path:
    """A ledger file whose schema version is ahead of this tool's."""
    with Ledger(path, TARGET):
        pass
    with closing(sqlite3.connect(path)) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 7}")
        db.commit()
    return path


def test_the_ledger_writes_its_schema_version(tmp_path: Path) -> None:
    """A new ledger file carries the tool's schema version (``PRAGMA user_version``)."""
    with Ledger(tmp_path / "l.sqlite", TARGET):
        pass
    with closing(sqlite3.connect(tmp_path / "l.sqlite")) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_newer_ledger_is_a_state_version_error_naming_file_and_versions(tmp_path: Path) -> None:
    """StateVersionError (exit 2, terminal) names the file, its version and the tool's."""
    path = newer_ledger(tmp_path / "l.sqlite")
    with pytest.raises(StateVersionError) as caught:
        Ledger(path, TARGET).open()
    message = str(caught.value)
    assert str(path) in message
    assert str(SCHEMA_VERSION + 7) in message and str(SCHEMA_VERSION) in message
    assert (caught.value.exit_code, caught.value.retryable) == (2, False)
    with closing(sqlite3.connect(path)) as db:  # the file is left as it was
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 7
