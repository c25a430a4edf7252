"""Paging through ``GET /unified/lms/users``: the filter of a lookup, the ``next`` cursor to the end.

A page without a ``data`` array, or a cursor that repeats, is an ``ApiError`` (never an endless loop).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from pipelines.core.errors import ApiError

__all__ = ["user_filter", "user_pages"]


def user_filter(email: str | None, external_reference: str | None) -> dict[str, str]:
    """The query filter for exactly one of ``email`` / ``external_reference``."""
    if (email is None) == (external_reference is None):
        raise ValueError("give exactly one of email or external_reference")
    return (
        {"filter[email]": email}
        if email is not None
        else {"filter[external_reference]": str(external_reference)}
    )


async def user_pages(
    fetch: Callable[[dict[str, str]], Awaitable[dict[str, Any]]],
    page_size: int,
    filters: dict[str, str],
) -> AsyncIterator[dict[str, Any]]:
    """Yield the ``data`` items of the pages ``fetch`` gets (by query params) until ``next`` is null."""
    cursor: str | None = None
    seen: set[str] = set()
    while True:
        params = {**filters, "page_size": str(page_size)}
        if cursor:
            params["next"] = cursor
        payload = await fetch(params)
        items = payload.get("data") or []
        if not isinstance(items, list):
            raise ApiError("user list has no data array", code="http_4xx", http_status=200)
        for item in items:
            if isinstance(item, dict):
                yield item
        cursor = payload.get("next")
        if not cursor:
            return
        if cursor in seen:
            raise ApiError("user list repeats a page cursor", code="http_4xx", http_status=200)
        seen.add(str(cursor))
