"""A user's completions at the API (``GET /unified/lms/users/{id}/completions``, DESIGN §3), read
to reconcile keys in doubt; a provider that cannot list them (404, 501) makes the list ``None``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pipelines.api.client import StackOneClient
from pipelines.api.endpoints import completions_path
from pipelines.api.status_mapping import Answer, lookup_payload

__all__ = ["UNLISTABLE_STATUSES", "list_completions", "listing_payload", "updated_after_filter"]

UNLISTABLE_STATUSES = frozenset({404, 501})  # the provider cannot say what it holds
_WHAT = "completion list"


class _Unlistable(Exception):
    """Internal: the API answered a listing page with 404 or 501."""


def listing_payload(answer: Answer, redact: Callable[[str], str], base_url: str) -> dict[str, Any]:
    """A listing page's JSON object; 404/501 raise ``_Unlistable`` (not an abort: the run goes on),
    other failures as any lookup (``AuthError`` for 401/403, ``ApiError`` for the rest)."""
    response = answer.response
    if response is not None and not answer.exhausted and response.status_code in UNLISTABLE_STATUSES:
        raise _Unlistable
    return lookup_payload(answer, redact, base_url, _WHAT)


def updated_after_filter(moment: datetime | None) -> dict[str, str]:
    """``filter[updated_after]`` as a UTC instant with milliseconds (none when ``moment`` is None)."""
    if moment is None:
        return {}
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"filter[updated_after]": text}


async def list_completions(
    client: StackOneClient,
    account_id: str,
    user_id: str,
    *,
    updated_after: datetime | None = None,
    page_size: int = 100,
) -> list[dict[str, Any]] | None:
    """Every completion of the user updated after ``updated_after`` (all cursor pages, each page
    paced by the client's limiter and retried as any request); None when the API answers 404/501."""
    filters = updated_after_filter(updated_after)
    path = completions_path(user_id)
    pages = client.pages(path, account_id, page_size, filters, listing_payload, _WHAT)
    try:
        return [item async for item in pages]
    except _Unlistable:
        return None
