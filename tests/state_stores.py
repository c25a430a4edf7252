"""Fixtures for the state store: a session PostgreSQL cluster, and ``state_store``, a fresh empty
store per test, once as an SQLite file and once as a PostgreSQL schema."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from pipelines.core.state_location import StateLocation
from tests.postgres_server import postgres_missing, running_postgres

_schemas = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of a throw-away PostgreSQL cluster on 127.0.0.1 (skipped where there is none)."""
    missing = postgres_missing()
    if missing:
        pytest.skip(f"no PostgreSQL: {missing}")
    with running_postgres() as url:
        yield url


def fresh_postgres_state(postgres_url: str) -> StateLocation:
    """An empty schema of the session cluster, as a state URL (``search_path`` set to it)."""
    schema = f"state_{next(_schemas)}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return StateLocation.parse(f"{postgres_url}?options={quote(f'-csearch_path={schema}')}")


@pytest.fixture(params=["sqlite", "postgres"])
def state_store(request: pytest.FixtureRequest, tmp_path: Path) -> StateLocation:
    """A fresh, empty state store: an SQLite file, then a PostgreSQL schema."""
    if request.param == "sqlite":
        return StateLocation.sqlite(tmp_path / "state" / "ledger.sqlite")
    return fresh_postgres_state(request.getfixturevalue("postgres_url"))
