"""Paging through a StackOne list (users, a user's completions): the ``next`` cursor to the end.

A page without a ``data`` array, or a cursor that repeats, is an ``ApiError`` (never an endless loop).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from pipelines.core.errors import ApiError

__all__ = ["cursor_pages"]


async def cursor_pages(
    fetch: Callable[[dict[str, str]], Awaitable[dict[str, Any]]],
    page_size: int,
    filters: dict[str, str],
    what: str = "user list",
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
            raise ApiError(f"{what} has no data array", code="http_4xx", http_status=200)
        for item in items:
            if isinstance(item, dict):
                yield item
        cursor = payload.get("next")
        if not cursor:
            return
        if cursor in seen:
            raise ApiError(f"{what} repeats a page cursor", code="http_4xx", http_status=200)
        seen.add(str(cursor))
