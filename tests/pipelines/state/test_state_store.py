"""The state store: one interface over SQLite and PostgreSQL, migrations of files made by an older
lms-sync, ``state copy``/``info``/``migrate``, and URLs whose password never shows."""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from typer.testing import CliRunner

from pipelines.cli.app import app
from pipelines.core.errors import StateVersionError
from pipelines.core.state_location import StateLocation
from pipelines.sandbox import RunningSandbox
from pipelines.state.ledger import Ledger
from pipelines.state.processed_exports import ProcessedExports
from pipelines.state.state_copy import copy_state
from pipelines.state.state_info import state_info
from pipelines.state.state_schema import SCHEMA_VERSION
from tests.conftest import SANDBOX_ACCOUNT, SANDBOX_KEY
from tests.state_stores import fresh_postgres_state

ROOT = Path(__file__).resolve().parents[3]
OLD_STATE = Path(__file__).parent / "fixtures" / "ca919ae"  # made by lms-sync at commit ca919ae
SAMPLE = ROOT / "data" / "samples" / "cornerstone_transcript.csv"
MAPPING = ROOT / "config" / "mappings" / "cornerstone_transcript.yaml"
OLD_OUTCOMES = {
    "https://api.stackone.com": {
        "in_flight": 30, "delivered": 180, "failed": 30, "gave_up": 30, "duplicate": 30,
    },
    "http://127.0.0.1:8080": {
        "in_flight": 4, "delivered": 24, "failed": 4, "gave_up": 4, "duplicate": 4,
    },
}  # fmt: skip


def old_state(folder: Path) -> Path:
    """A copy of the state files written by lms-sync at commit ca919ae (schema 1)."""
    for name in ("ledger.sqlite", "users.sqlite"):
        shutil.copy(OLD_STATE / name, folder / name)
    return folder / "ledger.sqlite"


def outcomes(location: StateLocation | Path) -> dict[str, dict[str, int]]:
    """Keys per outcome of both targets, read through the ledger."""
    found = {}
    for target in OLD_OUTCOMES:
        with Ledger(location, target) as ledger:
            found[target] = ledger.counts()
    return found


def cli(*args: str, env: dict[str, str | None] | None = None) -> Any:
    """``lms-sync ARGS`` in-process."""
    return CliRunner().invoke(app, list(args), env={"PREFECT_API_URL": None, **(env or {})})


def test_a_state_made_by_an_older_lms_sync_migrates_without_losing_a_key(tmp_path: Path) -> None:
    """Schema 1 (ledger with processed exports, users.sqlite beside it) becomes schema 3: every
    key, fingerprint and cached user kept, a backup of the old file beside it."""
    path = old_state(tmp_path)
    assert outcomes(path) == OLD_OUTCOMES
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        history = db.execute("SELECT version, note FROM state_version").fetchall()
    assert history == [(SCHEMA_VERSION, f"migrated from 1, backup {tmp_path}/ledger.sqlite.v1.bak")]
    with closing(sqlite3.connect(tmp_path / "ledger.sqlite.v1.bak")) as backup:
        assert backup.execute("PRAGMA user_version").fetchone()[0] == 1
        assert backup.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 340
    info = state_info(StateLocation.sqlite(path))
    assert info["tables"] == {
        "targets": 2, "runs": 3, "deliveries": 340, "processed_exports": 4, "user_cache": 62,
    }  # fmt: skip
    with (
        closing(sqlite3.connect(tmp_path / "users.sqlite")) as old,
        closing(sqlite3.connect(path)) as new,
    ):
        query = "SELECT * FROM user_cache ORDER BY 1, 2, 3, 4"
        assert new.execute(query).fetchall() == old.execute(query).fetchall()


def test_a_newer_postgres_schema_is_refused(postgres_url: str) -> None:
    """A store written by a newer lms-sync: exit 2, naming the store (no password) and versions."""
    location = fresh_postgres_state(postgres_url)
    with Ledger(location, "https://api.stackone.com"):
        pass
    with psycopg.connect(location.url.get_secret_value(), autocommit=True) as conn:  # type: ignore[union-attr]
        conn.execute("INSERT INTO state_version VALUES (99, 'later', 'a newer lms-sync')")
    with pytest.raises(StateVersionError) as caught:
        Ledger(location, "https://api.stackone.com").open()
    assert caught.value.exit_code == 2
    assert "99" in str(caught.value) and str(SCHEMA_VERSION) in str(caught.value)


def test_copy_sqlite_into_postgres_and_back_keeps_every_row(
    tmp_path: Path, postgres_url: str
) -> None:
    """An old SQLite state copied into PostgreSQL and back: same keys, same records; copying
    again (a resumed copy) writes nothing and still verifies."""
    path = old_state(tmp_path)
    pg = fresh_postgres_state(postgres_url)
    tables = copy_state(StateLocation.sqlite(path), pg, say=lambda _: None)
    assert all(t.complete and t.copied == t.source_rows for t in tables)
    assert outcomes(pg) == OLD_OUTCOMES
    with Ledger(path, "https://api.stackone.com") as a, Ledger(pg, "https://api.stackone.com") as b:
        for key in a.in_doubt()[:3]:
            assert a.lookup(key) == b.lookup(key)
    with ProcessedExports(pg, "https://api.stackone.com", read_only=True) as exports:
        assert exports.seen(_fingerprint_of(path)) == "run-1"
    again = copy_state(StateLocation.sqlite(path), pg, say=lambda _: None)
    assert [t.copied for t in again] == [0] * len(again)
    back = StateLocation.sqlite(tmp_path / "back" / "ledger.sqlite")
    copy_state(pg, back, say=lambda _: None)
    assert outcomes(back) == OLD_OUTCOMES
    assert state_info(back)["tables"] == state_info(pg)["tables"]


def _fingerprint_of(path: Path) -> str:
    with closing(sqlite3.connect(path)) as db:
        row = db.execute(
            "SELECT fingerprint FROM processed_exports WHERE run_id = 'run-1' "
            "AND target = 'https://api.stackone.com'"
        ).fetchone()
    return str(row[0])


def test_a_state_copied_into_postgres_sends_nothing_again(
    tmp_path: Path, postgres_url: str, sandbox: RunningSandbox
) -> None:
    """Deliver with the SQLite default, ``state copy`` into PostgreSQL, rerun against it: not
    one request more reaches the API."""
    env = {
        "STACKONE_BASE_URL": sandbox.base_url,
        "STACKONE_API_KEY": SANDBOX_KEY,
        "STACKONE_ACCOUNT_ID": SANDBOX_ACCOUNT,
    }
    ledger = tmp_path / "state" / "ledger.sqlite"
    first = cli("run", str(SAMPLE), "-m", str(MAPPING), "--out", str(tmp_path / "r1"),
                "--ledger", str(ledger), "-q", env=env)  # fmt: skip
    assert first.exit_code == 1, first.output  # the sample's bad rows are dead-lettered
    sent = len(sandbox.request_log())
    pg = fresh_postgres_state(postgres_url)
    url = pg.url.get_secret_value()  # type: ignore[union-attr]
    copied = cli("state", "copy", str(ledger), url)
    assert copied.exit_code == 0, copied.output
    assert "MISSING" not in copied.output
    again = cli("run", str(SAMPLE), "-m", str(MAPPING), "--out", str(tmp_path / "r2"), "--json",
                env={**env, "LMS_SYNC_STATE_URL": url})  # fmt: skip
    report = orjson.loads(again.stdout[again.stdout.index("{") :])
    assert len(sandbox.request_log()) == sent
    assert report["outcomes"]["delivered"] == 0
    assert report["outcomes"]["duplicate"] >= 10


def test_ledger_and_a_state_url_together_are_a_usage_error(tmp_path: Path) -> None:
    """``--ledger`` is ``sqlite:///PATH``: giving it and LMS_SYNC_STATE_URL exits 2."""
    result = cli("run", str(SAMPLE), "-m", str(MAPPING), "--dry-run", "--ledger",
                 str(tmp_path / "l.sqlite"), "--out", str(tmp_path / "out"),
                 env={"LMS_SYNC_STATE_URL": f"sqlite:///{tmp_path}/other.sqlite"})  # fmt: skip
    assert result.exit_code == 2
    assert "not both" in result.output


def test_the_password_of_a_state_url_never_shows(postgres_url: str) -> None:
    """``state info`` on a URL with a password, the location's repr and str: ``***``."""
    url = fresh_postgres_state(postgres_url).url.get_secret_value()  # type: ignore[union-attr]
    with_password = url.replace("lms@", "lms:hunter2@")
    location = StateLocation.parse(with_password)
    assert "hunter2" not in repr(location) + str(location)
    assert ":***@" in location.display
    shown = cli("state", "info", with_password)
    assert shown.exit_code == 0, shown.output
    assert "hunter2" not in shown.output and "lms:***@" in shown.output
    refused = cli("state", "info", "mysql://root:hunter2@db/x")
    assert refused.exit_code == 2 and "hunter2" not in refused.output


def test_sqlite_url_forms() -> None:
    """``sqlite:///rel/path`` is relative, ``sqlite:////abs/path`` absolute."""
    assert StateLocation.parse("sqlite:///data/x.sqlite").path == Path("data/x.sqlite")
    assert StateLocation.parse("sqlite:////srv/x.sqlite").path == Path("/srv/x.sqlite")
    with pytest.raises(ValueError, match="sqlite:///"):
        StateLocation.parse("sqlite://")
