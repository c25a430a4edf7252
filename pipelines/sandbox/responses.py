"""The sandbox's HTTP answers in StackOne's shapes: JSON bodies, error envelopes, cursor pages."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from pipelines.sandbox.config import MAX_PAGE_SIZE


def now_text() -> str:
    """The current UTC time as StackOne writes it (milliseconds, ``Z``)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_instant(text: str) -> datetime | None:
    """An ISO 8601 instant (``Z`` or an offset; naive means UTC), or None when unparseable."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def json_response(status: int, body: object, headers: dict[str, str] | None = None) -> Response:
    """``body`` as a JSON response with ``status``."""
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def error_response(
    status: int,
    message: str,
    data: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """StackOne's error envelope: statusCode, message, timestamp and optional data."""
    body: dict[str, Any] = {"statusCode": status, "message": message, "timestamp": now_text()}
    if data is not None:
        body["data"] = data
    return json_response(status, body, headers)


def page_response(items: list[dict[str, Any]], request: Request, default_size: int) -> Response:
    """One page of ``items`` by ``page_size`` and the opaque ``next`` cursor."""
    try:
        size = int(request.query_params.get("page_size", default_size))
        cursor = request.query_params.get("next")
        start = int(base64.urlsafe_b64decode(cursor.encode()).decode()) if cursor else 0
    except ValueError:
        return error_response(
            400, "page_size must be an integer and next a cursor from a previous page"
        )
    if not 1 <= size <= MAX_PAGE_SIZE or start < 0:
        return error_response(400, f"page_size must be in 1..{MAX_PAGE_SIZE}")
    end = start + size
    more = base64.urlsafe_b64encode(str(end).encode()).decode() if end < len(items) else None
    return json_response(200, {"data": items[start:end], "next": more})
