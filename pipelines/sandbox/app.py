"""A local imitation of StackOne's unified LMS API (DESIGN §3) as an ASGI app, for tests and demos.

Basic auth, ``x-account-id``, strict body validation (``transforms.dto``), 409 on an exact repeat,
a per-key sliding-window rate limit, injected latency and faults, and a request log. Choices where
StackOne's behaviour is not pinned down:

- a missing ``x-account-id`` is 400 "x-account-id header is required"; one outside the accounts
  the key reaches (``SandboxConfig.account_ids``) is 403 "Account not found or not accessible with
  this API key", as StackOne answers (a 401 names no account);
- a malformed or wrongly shaped body (bad JSON, missing/unknown field, wrong JSON type, null) is
  400; a well-typed value that breaks a rule (timestamp/duration spelling, score range, result
  value, empty string) is 422; the message names the first field in ``API_FIELDS`` order;
- a request answered 429 takes no slot in the window; a 401 counts for no key; ``/sandbox/*``
  control endpoints are neither authenticated, rate limited, faulted, delayed nor logged;
- ``store_repeats`` stores an exact repeat as a new record (a provider that does not deduplicate);
  ``list_completions=False`` answers a user's completion list with 501; listed items carry
  ``updated_at`` (their creation time: the sandbox never updates one), ``filter[updated_after]``
  keeps the later ones (an unparseable instant is 400);
- faults are drawn after auth and rate limit: 500/502/503/408 and ``drop`` store nothing; ``slow``
  waits ``slow_seconds`` and then handles the request normally (the work is done, the client has
  usually given up: its retry then meets 409); the log names only keys the sandbox accepts.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import asdict
from typing import Any
from urllib.parse import quote, unquote

import orjson
from pydantic import ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from pipelines.sandbox.behaviours import RequestGate, api_key_from_header, latency_sampler
from pipelines.sandbox.config import ACCOUNT_REFUSED, SandboxConfig
from pipelines.sandbox.responses import (
    error_response,
    json_response,
    now_text,
    page_response,
    parse_instant,
)
from pipelines.sandbox.store import CompletionStore
from transforms.dto import field_errors, parse_wire_body

# Body error types that make a request malformed (400) rather than unprocessable (422).
_MALFORMED = frozenset(
    {"json_invalid", "model_type", "missing", "extra_forbidden", "null_field", "string_type",
     "dict_type", "model_attributes_type", "number_type"}
)  # fmt: skip


def _segments(scope: Scope) -> list[str]:
    """Percent-decoded path segments (from the raw path, so ``a%2Fb`` stays one segment)."""
    raw = scope.get("raw_path") or quote(scope["path"]).encode()
    parts = raw.decode("latin-1").split("?")[0].split("/")[1:]
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    return [unquote(part) for part in parts]


class SandboxApp:
    """The ASGI application; all state lives on the server's event loop thread."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        self._latency = latency_sampler(*config.latency, self._rng)
        self._gate = RequestGate(config, self._rng)
        self._store = CompletionStore(config.db_path, config.store_repeats)
        self._users = None if config.users is None else {user["id"]: user for user in config.users}
        self._requests: list[dict[str, Any]] = []
        self._closing = asyncio.Event()

    def close(self) -> None:
        """Cut every pending delay short (those connections are dropped); call on the loop."""
        self._closing.set()

    def close_store(self) -> None:
        """Close the database once the server has stopped."""
        self._store.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request."""
        if scope["type"] != "http":
            return
        request, segments = Request(scope, receive), _segments(scope)
        if segments[:1] == ["sandbox"]:
            await self._control(request, segments)(scope, receive, send)
            return
        arrival, key = time.time(), api_key_from_header(request.headers.get("authorization"))
        known = key if key in self.config.api_keys else None  # never log a key we do not issue
        path = scope.get("raw_path", b"").decode("latin-1") or scope["path"]
        entry = {"time": arrival, "key": known, "method": scope["method"], "path": path,
                 "account": request.headers.get("x-account-id")}  # fmt: skip
        response, fault = self._gate.admit(key, time.monotonic())
        try:
            await request.body()  # read now, as a real server would before any delay
        except ClientDisconnect:
            self._requests.append({**entry, "status": 0, "fault": "client_disconnected"})
            return
        await self._pause(self._latency())
        if fault == "slow":
            await self._pause(self.config.slow_seconds)
        if fault == "drop" or self._closing.is_set():
            self._requests.append({**entry, "status": 0, "fault": fault or "shutdown"})
            await self._drop(send)
            return
        if response is None:
            response = await self._route(request, segments)
        self._requests.append({**entry, "status": response.status_code, "fault": fault})
        await response(scope, receive, send)

    async def _pause(self, seconds: float) -> None:
        """Sleep without blocking the loop, cut short when the server stops."""
        if seconds <= 0 or self._closing.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    async def _drop(self, send: Send) -> None:
        """Close the connection without any response (uvicorn's transport behind ``send``)."""
        transport = getattr(getattr(send, "__self__", None), "transport", None)
        if isinstance(transport, asyncio.BaseTransport):
            transport.close()
            for _ in range(3):  # let uvicorn see the disconnect, so it sends no 500
                await asyncio.sleep(0)
            return
        await send(
            {"type": "http.response.start", "status": 500, "headers": [(b"content-length", b"1")]}
        )

    async def _route(self, request: Request, segments: list[str]) -> Response:
        """Dispatch an admitted ``/unified`` request."""
        account = request.headers.get("x-account-id")
        if not account:
            return error_response(400, "x-account-id header is required")
        if account not in self.config.account_ids:
            return error_response(403, ACCOUNT_REFUSED)
        method = request.method
        if segments == ["unified", "lms", "users"]:
            if method == "GET":
                return self._list_users(request)
            return error_response(405, "Method not allowed")
        if (
            len(segments) == 5
            and segments[:3] == ["unified", "lms", "users"]
            and segments[4] == "completions"
        ):
            user_id = segments[3]
            if method == "POST":
                return await self._create(request, account, user_id)
            if method == "GET":
                return self._list_completions(request, account, user_id)
            return error_response(405, "Method not allowed")
        return error_response(404, f"Cannot {method} {request.url.path}")

    def _list_users(self, request: Request) -> Response:
        email = request.query_params.get("filter[email]")
        reference = request.query_params.get("filter[external_reference]")
        users = [
            user
            for user in (self._users or {}).values()
            if (email is None or str(user.get("email", "")).lower() == email.lower())
            and (reference is None or user.get("external_reference") == reference)
        ]
        return page_response(users, request, self.config.page_size)

    async def _create(self, request: Request, account: str, user_id: str) -> Response:
        try:
            dto = parse_wire_body(await request.body())
        except ValidationError as exc:
            errors = field_errors(exc)
            status = 400 if any(error.type in _MALFORMED for error in errors) else 422
            first = errors[0]
            details = {"errors": [asdict(error) for error in errors]}
            return error_response(status, f"{first.field}: {first.message}", details)
        if self._users is not None and user_id not in self._users:
            return error_response(404, f"User {user_id!r} not found")
        body = orjson.dumps(dto.to_body(), option=orjson.OPT_SORT_KEYS).decode()
        created, completion_id = self._store.add(account, user_id, body, now_text())
        if not created:
            return error_response(409, "Record already exists", {"id": completion_id})
        data = {"id": completion_id, "remote_id": self._store.remote_id(completion_id)}
        message = "Record created successfully."
        return json_response(
            201, {"statusCode": 201, "message": message, "timestamp": now_text(), "data": data}
        )

    def _list_completions(self, request: Request, account: str, user_id: str) -> Response:
        if not self.config.list_completions:
            return error_response(501, "Listing completions is not supported by this provider")
        if self._users is not None and user_id not in self._users:
            return error_response(404, f"User {user_id!r} not found")
        after_text = request.query_params.get("filter[updated_after]")
        after = parse_instant(after_text) if after_text is not None else None
        if after_text is not None and after is None:
            return error_response(400, f"filter[updated_after] is not an instant: {after_text!r}")
        items = []
        for row in self._store.rows(account, user_id):
            item = {**row.pop("body"), **row, "updated_at": row["created_at"]}  # never updated
            updated = parse_instant(item["updated_at"])
            if after is None or (updated is not None and updated > after):
                items.append(item)
        return page_response(items, request, self.config.page_size)

    def _control(self, request: Request, segments: list[str]) -> Response:
        """Test-only endpoints: stored completions, the request log, reset."""
        route = (request.method, "/".join(segments[1:]))
        if route == ("GET", "completions"):
            return json_response(200, {"data": self._store.rows()})
        if route == ("GET", "requests"):
            return json_response(200, {"data": self._requests})
        if route == ("POST", "reset"):
            self._store.clear()
            self._requests.clear()
            self._gate.clear()
            return json_response(200, {"message": "reset"})
        return error_response(404, f"Cannot {request.method} {request.url.path}")
