"""User lookup against the sandbox over HTTP: filtered lookups, whole-list paging, the cache."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from pipelines.api.client import StackOneClient
from pipelines.api.ratelimit import RateLimiter
from pipelines.api.user_lookup import UserCache, UserResolver
from pipelines.sandbox import RunningSandbox
from tests.conftest import SANDBOX_ACCOUNT, SANDBOX_KEY

USERS = [
    {"id": f"u{i}", "email": f"Person{i}@Example.com", "external_reference": f"EXT-{i}"}
    for i in range(60)
]


def _lookups(sandbox: RunningSandbox) -> int:
    return sum(1 for entry in sandbox.request_log() if entry["method"] == "GET")


async def _resolve(
    sandbox: RunningSandbox,
    cache_path: Path,
    values: list[str],
    kind: Any = "email",
    **options: Any,
) -> dict[str, str | None]:
    async with StackOneClient(
        SANDBOX_KEY, base_url=sandbox.base_url, limiter=RateLimiter(1000, 1.0)
    ) as client:
        ttl = options.pop("ttl_seconds", 3600)
        with UserCache(cache_path, sandbox.base_url, ttl_seconds=ttl) as cache:
            resolver = UserResolver(client, cache, **options)
            return await resolver.resolve(SANDBOX_ACCOUNT, kind, values)


def test_few_values_one_lookup_each_then_cached(
    make_sandbox: Callable[..., RunningSandbox], tmp_path: Path
) -> None:
    """Two emails (one unknown): two filtered lookups; the second run asks nothing."""
    sandbox = make_sandbox(users=USERS)
    cache = tmp_path / "state.sqlite"
    found = asyncio.run(_resolve(sandbox, cache, ["person3@example.com", "nobody@example.com"]))
    assert found == {"person3@example.com": "u3", "nobody@example.com": None}
    assert _lookups(sandbox) == 2
    again = asyncio.run(_resolve(sandbox, cache, [" PERSON3@example.com ", "nobody@example.com"]))
    assert again == found
    assert _lookups(sandbox) == 2


def test_many_values_page_through_the_list_once(
    make_sandbox: Callable[..., RunningSandbox], tmp_path: Path
) -> None:
    """Above the one-by-one limit the whole user list is read once (paged), misses included."""
    many = [
        {"id": f"u{i}", "email": f"p{i}@example.com", "external_reference": f"EXT-{i}"}
        for i in range(250)
    ]
    sandbox = make_sandbox(users=many)
    values = [f"EXT-{i}" for i in range(40)] + ["EXT-missing"]
    found = asyncio.run(
        _resolve(sandbox, tmp_path / "s.sqlite", values, "external_reference", one_by_one_limit=5)
    )
    assert found["EXT-7"] == "u7" and found["EXT-missing"] is None
    assert len(found) == 41
    assert _lookups(sandbox) == 3  # 250 users, 100 a page


def test_expired_answers_are_looked_up_again(
    make_sandbox: Callable[..., RunningSandbox], tmp_path: Path
) -> None:
    """With a time-to-live of zero every run asks the API again."""
    sandbox = make_sandbox(users=USERS)
    cache = tmp_path / "state.sqlite"
    asyncio.run(_resolve(sandbox, cache, ["person1@example.com"], ttl_seconds=0))
    asyncio.run(_resolve(sandbox, cache, ["person1@example.com"], ttl_seconds=0))
    assert _lookups(sandbox) == 2


def test_check_remote_lists_users_the_api_does_not_know(
    make_sandbox: Callable[..., RunningSandbox], tmp_path: Path
) -> None:
    """A dry run with --check-remote looks each distinct user up once and names the missing."""
    from typer.testing import CliRunner

    from pipelines.cli.app import app

    sandbox = make_sandbox(users=[{"id": "0041235"}, {"id": "0041236"}])
    env = {
        "STACKONE_API_KEY": SANDBOX_KEY,
        "STACKONE_ACCOUNT_ID": SANDBOX_ACCOUNT,
        "STACKONE_BASE_URL": sandbox.base_url,
    }
    result = CliRunner().invoke(
        app,
        [
            "run",
            "data/samples/cornerstone_transcript.csv",
            "-m",
            "config/mappings/cornerstone_transcript.yaml",
            "--dry-run",
            "--check-remote",
            "--out",
            str(tmp_path / "run"),
            "--ledger",
            str(tmp_path / "state" / "ledger.sqlite"),
            "--json",
        ],
        env=env,
    )
    assert result.exit_code == 1, result.output
    report = orjson.loads(result.stdout)
    remote = report["remote_check"]
    assert remote["users_checked"] == 9
    assert remote["missing_count"] == 7
    assert "sandbox-account/0041237" in remote["missing"]
    assert "sandbox-account/0041235" not in remote["missing"]
    assert not (tmp_path / "state" / "ledger.sqlite").exists()  # a dry run never writes the ledger
    assert all(entry["method"] == "GET" for entry in sandbox.request_log())


def test_delivery_resolves_emails_and_dead_letters_unknown_users(
    make_sandbox: Callable[..., RunningSandbox], tmp_path: Path
) -> None:
    """resolve_by: email sends to the looked-up id; an unknown email is user_not_found (resolve)."""
    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from pipelines.cli.app import app

    sandbox = make_sandbox(users=USERS)
    export = tmp_path / "export.csv"
    export.write_text(
        "email,course,done\n"
        "Person1@example.com,C-1,2024-01-02T10:00:00Z\n"
        "person2@EXAMPLE.com,C-1,2024-01-03T10:00:00Z\n"
        "stranger@example.com,C-1,2024-01-04T10:00:00Z\n"
        "person1@example.com,C-2,2024-01-05T10:00:00Z\n"
    )
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        "version: 1\n"
        "user: {column: email, resolve_by: email}\n"
        "fields:\n"
        "  learning_object_external_reference: {column: course}\n"
        "  completed_at: {column: done}\n"
    )
    env = {
        "STACKONE_API_KEY": SANDBOX_KEY,
        "STACKONE_ACCOUNT_ID": SANDBOX_ACCOUNT,
        "STACKONE_BASE_URL": sandbox.base_url,
    }
    args = ["run", str(export), "-m", str(mapping), "--ledger", str(tmp_path / "l.sqlite")]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "r1"), "--json"], env=env)
    assert result.exit_code == 1, result.output
    report = orjson.loads(result.stdout)
    assert report["outcomes"]["delivered"] == 3
    assert report["outcomes"]["invalid"] == 1 and report["reasons"]["user_not_found"] == 1
    stored = sorted(
        (c["user_id"], c["body"]["learning_object_external_reference"])
        for c in sandbox.completions()
    )
    assert stored == [("u1", "C-1"), ("u1", "C-2"), ("u2", "C-1")]
    dead = pq.read_table(tmp_path / "r1" / "deadletter.parquet").to_pylist()
    assert [
        (d["email"], d["_dl_stage"], d["_dl_error_code"], d["_dl_source_row"]) for d in dead
    ] == [("stranger@example.com", "resolve", "user_not_found", 3)]
    lookups = sum(1 for e in sandbox.request_log() if e["method"] == "GET")
    assert lookups == 3  # three distinct emails, each looked up once
    again = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "r2"), "--json"], env=env)
    second = orjson.loads(again.stdout)
    assert second["outcomes"]["duplicate"] == 3 and second["reasons"]["user_not_found"] == 1
    # Delivered rows need no lookup; the unknown email is a cached miss (no request either).
    assert sum(1 for e in sandbox.request_log() if e["method"] == "GET") == 3


def test_lookup_refused_stops_with_every_row_counted(
    make_sandbox: Callable[..., RunningSandbox], tmp_path: Path
) -> None:
    """A 401 on the user lookup aborts (exit 3); rows waiting for their ids are pending."""
    from typer.testing import CliRunner

    from pipelines.cli.app import app

    sandbox = make_sandbox(users=USERS, api_keys={"another-key"})
    export = tmp_path / "export.csv"
    export.write_text(
        "email,course\nperson1@example.com,C-1\nperson2@example.com,C-1\nnot-an-email,C-1\n"
    )
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        "version: 1\n"
        "user: {column: email, resolve_by: email}\n"
        "fields:\n"
        "  learning_object_external_reference: {column: course}\n"
    )
    env = {
        "STACKONE_API_KEY": SANDBOX_KEY,
        "STACKONE_ACCOUNT_ID": SANDBOX_ACCOUNT,
        "STACKONE_BASE_URL": sandbox.base_url,
    }
    args = ["run", str(export), "-m", str(mapping), "--ledger", str(tmp_path / "l.sqlite")]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "r"), "--json"], env=env)
    assert result.exit_code == 3, result.output
    report = orjson.loads((tmp_path / "r" / "report.json").read_bytes())
    assert report["outcomes"]["pending"] == 2
    assert report["outcomes"]["invalid"] == 1  # not an email: never looked up
    assert sum(report["outcomes"].values()) == report["rows_read"] == 3
    assert sandbox.completions() == []
