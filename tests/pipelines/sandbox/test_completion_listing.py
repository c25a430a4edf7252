"""The sandbox's list of a user's completions (``updated_at``, ``filter[updated_after]``, cursor
pages), its repeat-storing mode (a provider that does not deduplicate) and an unlisting provider."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pipelines.sandbox import RunningSandbox
from tests.conftest import sandbox_client
from tests.pipelines.sandbox.test_sandbox import BODY, completions_path

MakeSandbox = Callable[..., RunningSandbox]


def _body(n: int) -> dict[str, Any]:
    return {**BODY, "learning_object_external_reference": f"COURSE-{n}"}


def test_listing_items_carry_updated_at_and_pages_follow_next(make_sandbox: MakeSandbox) -> None:
    """Seven completions in pages of three: three pages, every item once, each with updated_at."""
    running = make_sandbox()
    with sandbox_client(running) as client:
        for n in range(7):
            assert client.post(completions_path("u1"), json=_body(n)).status_code == 201
        client.post(completions_path("u2"), json=_body(99))
        pages, params = [], {"page_size": "3"}
        while True:
            page = client.get(completions_path("u1"), params=params).json()
            pages.append(page["data"])
            if not page["next"]:
                break
            params = {"page_size": "3", "next": page["next"]}
    assert [len(page) for page in pages] == [3, 3, 1]
    items = [item for page in pages for item in page]
    assert [i["learning_object_external_reference"] for i in items] == [
        f"COURSE-{n}" for n in range(7)
    ]
    assert all(item["updated_at"].endswith("Z") and item["id"] for item in items)


def test_filter_updated_after_keeps_only_later_items(make_sandbox: MakeSandbox) -> None:
    """``filter[updated_after]`` leaves out items updated at or before the instant; any ISO
    spelling of the instant works, and an unparseable one is 400."""
    running = make_sandbox()
    with sandbox_client(running) as client:
        client.post(completions_path("u1"), json=_body(1))
        time.sleep(0.05)
        middle = datetime.now(UTC)
        time.sleep(0.05)
        client.post(completions_path("u1"), json=_body(2))
        later = client.get(
            completions_path("u1"), params={"filter[updated_after]": middle.isoformat()}
        ).json()["data"]
        offset = middle.astimezone(UTC).astimezone(timezone_plus_two()).isoformat()
        same = client.get(
            completions_path("u1"), params={"filter[updated_after]": offset}
        ).json()["data"]
        early = (middle - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        both = client.get(completions_path("u1"), params={"filter[updated_after]": early})
        bad = client.get(completions_path("u1"), params={"filter[updated_after]": "yesterday"})
    assert [i["learning_object_external_reference"] for i in later] == ["COURSE-2"]
    assert same == later
    assert len(both.json()["data"]) == 2
    assert bad.status_code == 400 and "updated_after" in bad.json()["message"]


def timezone_plus_two() -> Any:
    """A fixed +02:00 zone (the same instant written another way)."""
    from datetime import timezone

    return timezone(timedelta(hours=2))


def test_store_repeats_stores_an_exact_repeat_as_a_new_record(make_sandbox: MakeSandbox) -> None:
    """With ``store_repeats`` an exact repeat is 201 with a new id (no 409 safety net); without
    it the same repeat is 409."""
    repeating, deduplicating = make_sandbox(store_repeats=True), make_sandbox()
    with sandbox_client(repeating) as client:
        first = client.post(completions_path("u1"), json=BODY)
        again = client.post(completions_path("u1"), json=BODY)
        listed = client.get(completions_path("u1")).json()["data"]
    with sandbox_client(deduplicating) as client:
        assert client.post(completions_path("u1"), json=BODY).status_code == 201
        assert client.post(completions_path("u1"), json=BODY).status_code == 409
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json()["data"]["id"] != again.json()["data"]["id"]
    assert len(repeating.completions()) == len(listed) == 2


def test_a_provider_without_listing_answers_501(make_sandbox: MakeSandbox) -> None:
    """``list_completions=False``: the listing is 501 (creating still works)."""
    running = make_sandbox(list_completions=False)
    with sandbox_client(running) as client:
        assert client.post(completions_path("u1"), json=BODY).status_code == 201
        listing = client.get(completions_path("u1"))
    assert listing.status_code == 501
