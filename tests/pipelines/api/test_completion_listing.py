"""Listing a user's completions against the sandbox: cursor pages, ``filter[updated_after]``,
the shared limiter, and 404/501 as "cannot list" (None)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipelines.api.client import StackOneClient
from pipelines.api.completion_listing import list_completions
from pipelines.api.ratelimit import RateLimiter
from pipelines.core.errors import AuthError
from pipelines.sandbox import RunningSandbox
from tests.conftest import SANDBOX_ACCOUNT, SANDBOX_KEY, sandbox_client
from tests.pipelines.sandbox.test_sandbox import BODY, completions_path

MakeSandbox = Callable[..., RunningSandbox]


def _store(sandbox: RunningSandbox, user: str, refs: range) -> None:
    with sandbox_client(sandbox) as client:
        for n in refs:
            body = {**BODY, "learning_object_external_reference": f"C-{n}"}
            assert client.post(completions_path(user), json=body).status_code == 201


async def _list(
    sandbox: RunningSandbox, user: str, key: str = SANDBOX_KEY, **options: Any
) -> tuple[list[dict[str, Any]] | None, int]:
    """The listing and how many requests the client sent."""
    async with StackOneClient(
        key, base_url=sandbox.base_url, limiter=RateLimiter(1000, 1.0)
    ) as client:
        items = await list_completions(client, SANDBOX_ACCOUNT, user, **options)
        return items, client.stats.sent


def test_listing_follows_next_through_every_page(make_sandbox: MakeSandbox) -> None:
    """Five completions in pages of two: three GETs with page_size=2, every item once, in order."""
    sandbox = make_sandbox()
    _store(sandbox, "u/1", range(5))
    _store(sandbox, "u2", range(9, 10))
    items, sent = asyncio.run(_list(sandbox, "u/1", page_size=2))
    assert items is not None
    assert [i["learning_object_external_reference"] for i in items] == [f"C-{n}" for n in range(5)]
    gets = [e for e in sandbox.request_log() if e["method"] == "GET"]
    assert sent == len(gets) == 3
    assert all(e["path"].startswith("/unified/lms/users/u%2F1/completions") for e in gets)


def test_listing_sends_updated_after_and_gets_only_later_items(make_sandbox: MakeSandbox) -> None:
    """``updated_after`` goes out as ``filter[updated_after]``: only the later items come back."""
    sandbox = make_sandbox()
    _store(sandbox, "u1", range(2))
    time.sleep(0.05)
    middle = datetime.now(UTC)
    time.sleep(0.05)
    _store(sandbox, "u1", range(2, 3))
    items, _ = asyncio.run(_list(sandbox, "u1", updated_after=middle))
    earlier, _ = asyncio.run(_list(sandbox, "u1", updated_after=middle - timedelta(minutes=10)))
    assert [i["learning_object_external_reference"] for i in items or []] == ["C-2"]
    assert len(earlier or []) == 3


@pytest.mark.parametrize(
    ("config", "user"),
    [({"list_completions": False}, "u1"), ({"users": [{"id": "u1"}]}, "nobody")],
    ids=["501", "404"],
)
def test_a_listing_the_api_cannot_answer_is_none(
    make_sandbox: MakeSandbox, config: dict[str, Any], user: str
) -> None:
    """501 (the provider cannot list) and 404 (no such user) make the listing None, not an error."""
    sandbox = make_sandbox(**config)
    items, sent = asyncio.run(_list(sandbox, user))
    assert items is None and sent == 1


def test_a_refused_key_still_aborts(make_sandbox: MakeSandbox) -> None:
    """401 on a listing is an ``AuthError`` as on any request (the run must stop)."""
    sandbox = make_sandbox()
    with pytest.raises(AuthError):
        asyncio.run(_list(sandbox, "u1", key="wrong-key"))


def test_listing_requests_take_limiter_slots(make_sandbox: MakeSandbox) -> None:
    """Each page is paced by the client's limiter: 3 pages at 1 request/0.2 s take >= 0.4 s."""
    sandbox = make_sandbox()
    _store(sandbox, "u1", range(3))

    async def timed() -> float:
        async with StackOneClient(
            SANDBOX_KEY, base_url=sandbox.base_url, limiter=RateLimiter(1, 0.2)
        ) as client:
            start = time.monotonic()
            await list_completions(client, SANDBOX_ACCOUNT, "u1", page_size=1)
            return time.monotonic() - start

    assert asyncio.run(timed()) >= 0.4
