"""A local imitation of StackOne's unified LMS API (DESIGN §3) over real HTTP, for tests and demos.

Basic auth, ``x-account-id``, strict body validation (``transforms.dto``), 409 on an exact repeat,
a per-key sliding-window rate limit, injected latency and faults, and a request log. Choices where
StackOne's behaviour is not pinned down:

- a missing ``x-account-id`` is 400 "x-account-id header is required"; an unknown one is 403;
- a malformed or wrongly shaped body (bad JSON, missing/unknown field, wrong JSON type, null) is
  400; a well-typed value that breaks a rule (timestamp/duration spelling, score range, result
  value, empty string) is 422; the message names the first field in ``API_FIELDS`` order;
- a request answered 429 takes no slot in the window; a 401 counts for no key; ``/sandbox/*``
  control endpoints are neither authenticated, rate limited, faulted, delayed nor logged;
- faults are drawn after auth and rate limit: 500/502/503/408 and ``drop`` store nothing; ``slow``
  waits ``slow_seconds`` and then handles the request normally (the work is done, the client has
  usually given up: its retry then meets 409); the log names only keys the sandbox accepts.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import math
import random
import socket
import sqlite3
import ssl
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from statistics import NormalDist
from typing import Any
from urllib.parse import quote, unquote

import httpx
import orjson
import uvicorn
from pydantic import ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from transforms.dto import field_errors, parse_wire_body

DEFAULT_API_KEY = "sandbox-key"
DEFAULT_ACCOUNT_ID = "sandbox-account"
FAULT_KINDS: tuple[str, ...] = ("http_500", "http_502", "http_503", "http_408", "drop", "slow")
MAX_PAGE_SIZE = 100
# Body error types that make a request malformed (400) rather than unprocessable (422).
_MALFORMED = frozenset(
    {"json_invalid", "model_type", "missing", "extra_forbidden", "null_field", "string_type",
     "dict_type", "model_attributes_type", "number_type"}
)  # fmt: skip
_FAULT_ANSWERS = {
    "http_500": (500, "Internal server error"),
    "http_502": (502, "Bad gateway: the provider did not answer"),
    "http_503": (503, "Service unavailable"),
    "http_408": (408, "Request timeout"),
}
_Z99 = NormalDist().inv_cdf(0.99)


@dataclass
class SandboxConfig:
    """How the sandbox behaves; defaults mimic StackOne (1000 requests/60 s per key, no faults)."""

    api_keys: set[str] = field(default_factory=lambda: {DEFAULT_API_KEY})
    account_ids: set[str] = field(default_factory=lambda: {DEFAULT_ACCOUNT_ID})
    rate_limit: tuple[int, float] = (1000, 60.0)
    latency: tuple[float, float] = (0.0, 0.0)  # (median_ms, p99_ms) of a log-normal
    fault_rate: float = 0.0
    faults: tuple[str, ...] = FAULT_KINDS
    slow_seconds: float = 30.0
    users: list[dict[str, str]] | None = None  # loaded: completions for unknown users are 404
    db_path: str | Path | None = None  # None: in-memory SQLite
    seed: int | None = None
    page_size: int = 25

    def __post_init__(self) -> None:
        """Reject settings that cannot work, naming the setting."""
        if self.rate_limit[0] < 1 or self.rate_limit[1] <= 0:
            raise ValueError(f"rate_limit must be positive, got {self.rate_limit}")
        if not 0 <= self.latency[0] <= self.latency[1]:
            raise ValueError(f"latency must be 0 <= median <= p99, got {self.latency}")
        if not 0 <= self.fault_rate <= 1:
            raise ValueError(f"fault_rate must be in 0..1, got {self.fault_rate}")
        unknown = set(self.faults) - set(FAULT_KINDS)
        if unknown or not self.faults:
            raise ValueError(
                f"faults must be a non-empty subset of {FAULT_KINDS}, got {self.faults}"
            )
        if any("id" not in user for user in self.users or []):
            raise ValueError("every user needs an 'id'")
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be in 1..{MAX_PAGE_SIZE}, got {self.page_size}")


def parse_latency(text: str) -> tuple[float, float]:
    """``"300,3000"`` → ``(300.0, 3000.0)`` (median ms, p99 ms); one number means no spread."""
    try:
        parts = [float(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"latency must look like 300,3000 (median,p99 ms), got {text!r}") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or not 0 <= parts[0] <= parts[1] or not all(map(math.isfinite, parts)):
        raise ValueError(f"latency must be median,p99 with 0 <= median <= p99, got {text!r}")
    return parts[0], parts[1]


class _SlidingWindow:
    """At most ``limit`` admissions per key in any ``seconds`` window (a sliding log)."""

    def __init__(self, limit: int, seconds: float) -> None:
        self._limit, self._seconds = limit, seconds
        self._log: dict[str, deque[float]] = {}

    def admit(self, key: str, now: float) -> float | None:
        """Take a slot at ``now`` (None), or return the seconds until one frees (takes nothing)."""
        log = self._log.setdefault(key, deque())
        while log and log[0] <= now - self._seconds:
            log.popleft()
        if len(log) < self._limit:
            log.append(now)
            return None
        return log[0] + self._seconds - now

    def clear(self) -> None:
        """Forget every admission."""
        self._log.clear()


def _latency_sampler(median_ms: float, p99_ms: float, rng: random.Random) -> Callable[[], float]:
    """Seconds drawn from a log-normal with the given median and 99th percentile."""
    if median_ms <= 0:
        return lambda: 0.0
    mu, sigma = math.log(median_ms / 1000), math.log(p99_ms / median_ms) / _Z99
    return lambda: rng.lognormvariate(mu, sigma)


class _Store:
    """Completions in SQLite; an identical (account, user, body) is refused."""

    def __init__(self, path: str | Path | None) -> None:
        self._db = sqlite3.connect(
            str(path) if path else ":memory:", check_same_thread=False, isolation_level=None
        )
        if path:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS completions (seq INTEGER PRIMARY KEY, id TEXT UNIQUE,"
            " remote_id TEXT, account_id TEXT, user_id TEXT, body TEXT, created_at TEXT,"
            " UNIQUE (account_id, user_id, body))"
        )

    def add(self, account_id: str, user_id: str, body: str, created_at: str) -> tuple[bool, str]:
        """Store a completion: (True, new id), or (False, id of the identical one stored)."""
        new_id = uuid.uuid4().hex
        cursor = self._db.execute(
            "INSERT INTO completions (id, remote_id, account_id, user_id, body, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (new_id, f"remote-{uuid.uuid4().hex[:16]}", account_id, user_id, body, created_at),
        )
        if cursor.rowcount:
            return True, new_id
        row = self._db.execute(
            "SELECT id FROM completions WHERE account_id = ? AND user_id = ? AND body = ?",
            (account_id, user_id, body),
        ).fetchone()
        return False, row[0]

    def remote_id(self, completion_id: str) -> str:
        """The provider id of a stored completion."""
        row = self._db.execute("SELECT remote_id FROM completions WHERE id = ?", (completion_id,))
        return str(row.fetchone()[0])

    def rows(
        self, account_id: str | None = None, user_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Stored completions in creation order, optionally of one account and user."""
        query = "SELECT id, remote_id, account_id, user_id, body, created_at FROM completions"
        params: tuple[str, ...] = ()
        if account_id is not None and user_id is not None:
            query, params = query + " WHERE account_id = ? AND user_id = ?", (account_id, user_id)
        names = ("id", "remote_id", "account_id", "user_id", "body", "created_at")
        found = [
            dict(zip(names, row, strict=True))
            for row in self._db.execute(query + " ORDER BY seq", params)
        ]
        for row in found:
            row["body"] = orjson.loads(row["body"])
        return found

    def clear(self) -> None:
        """Delete every completion."""
        self._db.execute("DELETE FROM completions")

    def close(self) -> None:
        """Close the database."""
        self._db.close()


def _now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json(status: int, body: object, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def _error(
    status: int,
    message: str,
    data: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {"statusCode": status, "message": message, "timestamp": _now_text()}
    if data is not None:
        body["data"] = data
    return _json(status, body, headers)


def _api_key(authorization: str | None) -> str | None:
    """The user name of an HTTP Basic header with an empty password, else None."""
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return user if sep and not password else None


def _segments(scope: Scope) -> list[str]:
    """Percent-decoded path segments (from the raw path, so ``a%2Fb`` stays one segment)."""
    raw = scope.get("raw_path") or quote(scope["path"]).encode()
    parts = raw.decode("latin-1").split("?")[0].split("/")[1:]
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    return [unquote(part) for part in parts]


def _page(items: list[dict[str, Any]], request: Request, default_size: int) -> Response:
    """One page of ``items`` by ``page_size`` and the opaque ``next`` cursor."""
    try:
        size = int(request.query_params.get("page_size", default_size))
        cursor = request.query_params.get("next")
        start = int(base64.urlsafe_b64decode(cursor.encode()).decode()) if cursor else 0
    except ValueError:
        return _error(400, "page_size must be an integer and next a cursor from a previous page")
    if not 1 <= size <= MAX_PAGE_SIZE or start < 0:
        return _error(400, f"page_size must be in 1..{MAX_PAGE_SIZE}")
    end = start + size
    more = base64.urlsafe_b64encode(str(end).encode()).decode() if end < len(items) else None
    return _json(200, {"data": items[start:end], "next": more})


class SandboxApp:
    """The ASGI application; all state lives on the server's event loop thread."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        self._latency = _latency_sampler(*config.latency, self._rng)
        self._limiter = _SlidingWindow(*config.rate_limit)
        self._store = _Store(config.db_path)
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
        arrival, key = time.time(), _api_key(request.headers.get("authorization"))
        known = key if key in self.config.api_keys else None  # never log a key we do not issue
        path = scope.get("raw_path", b"").decode("latin-1") or scope["path"]
        entry = {"time": arrival, "key": known, "method": scope["method"], "path": path}
        response, fault = self._admit(key, time.monotonic())
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

    def _admit(self, key: str | None, now: float) -> tuple[Response | None, str | None]:
        """Auth, rate limit and fault draw: an early answer and/or the injected fault kind."""
        if key is None or key not in self.config.api_keys:
            return _error(401, "Unauthorized: send the API key as the Basic auth user name"), None
        wait = self._limiter.admit(key, now)
        if wait is not None:
            limit, period = self.config.rate_limit
            retry = str(max(1, math.ceil(wait)))
            message = f"Too many requests: at most {limit} per {period:g} s per API key"
            return _error(429, message, headers={"retry-after": retry}), None
        if self.config.fault_rate and self._rng.random() < self.config.fault_rate:
            fault = self._rng.choice(self.config.faults)
            if fault in _FAULT_ANSWERS:
                status, message = _FAULT_ANSWERS[fault]
                headers = {"retry-after": "1"} if status == 408 else None
                return _error(status, message, headers=headers), fault
            return None, fault
        return None, None

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
            return _error(400, "x-account-id header is required")
        if account not in self.config.account_ids:
            return _error(403, f"Account {account!r} is not accessible with this API key")
        method = request.method
        if segments == ["unified", "lms", "users"]:
            return (
                self._list_users(request) if method == "GET" else _error(405, "Method not allowed")
            )
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
            return _error(405, "Method not allowed")
        return _error(404, f"Cannot {method} {request.url.path}")

    def _list_users(self, request: Request) -> Response:
        email = request.query_params.get("filter[email]")
        reference = request.query_params.get("filter[external_reference]")
        users = [
            user
            for user in (self._users or {}).values()
            if (email is None or str(user.get("email", "")).lower() == email.lower())
            and (reference is None or user.get("external_reference") == reference)
        ]
        return _page(users, request, self.config.page_size)

    async def _create(self, request: Request, account: str, user_id: str) -> Response:
        try:
            dto = parse_wire_body(await request.body())
        except ValidationError as exc:
            errors = field_errors(exc)
            status = 400 if any(error.type in _MALFORMED for error in errors) else 422
            first = errors[0]
            details = {"errors": [asdict(error) for error in errors]}
            return _error(status, f"{first.field}: {first.message}", details)
        if self._users is not None and user_id not in self._users:
            return _error(404, f"User {user_id!r} not found")
        body = orjson.dumps(dto.to_body(), option=orjson.OPT_SORT_KEYS).decode()
        created, completion_id = self._store.add(account, user_id, body, _now_text())
        if not created:
            return _error(409, "Record already exists", {"id": completion_id})
        data = {"id": completion_id, "remote_id": self._store.remote_id(completion_id)}
        message = "Record created successfully."
        return _json(
            201, {"statusCode": 201, "message": message, "timestamp": _now_text(), "data": data}
        )

    def _list_completions(self, request: Request, account: str, user_id: str) -> Response:
        if self._users is not None and user_id not in self._users:
            return _error(404, f"User {user_id!r} not found")
        rows = self._store.rows(account, user_id)
        items = [{**row.pop("body"), **row} for row in rows]
        return _page(items, request, self.config.page_size)

    def _control(self, request: Request, segments: list[str]) -> Response:
        """Test-only endpoints: stored completions, the request log, reset."""
        route = (request.method, "/".join(segments[1:]))
        if route == ("GET", "completions"):
            return _json(200, {"data": self._store.rows()})
        if route == ("GET", "requests"):
            return _json(200, {"data": self._requests})
        if route == ("POST", "reset"):
            self._store.clear()
            self._requests.clear()
            self._limiter.clear()
            return _json(200, {"message": "reset"})
        return _error(404, f"Cannot {request.method} {request.url.path}")


@dataclass
class RunningSandbox:
    """A sandbox serving ``base_url`` from a background thread; ``stop()`` (or ``with``) ends it."""

    base_url: str
    config: SandboxConfig
    _app: SandboxApp
    _server: uvicorn.Server
    _thread: threading.Thread
    _control: httpx.Client | None = field(default=None, init=False, repr=False)

    def stop(self) -> None:
        """Stop serving (pending delays are cut short) and close the database; idempotent."""
        if self._control is not None:
            self._control.close()
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._app.close_store()

    def __enter__(self) -> RunningSandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def request_log(self) -> list[dict[str, Any]]:
        """Every API request: time (epoch s), key, method, path, status (0 = dropped), fault."""
        return list(self._get("/sandbox/requests"))

    def completions(self) -> list[dict[str, Any]]:
        """Every stored completion: id, remote_id, account_id, user_id, body, created_at."""
        return list(self._get("/sandbox/completions"))

    def reset(self) -> None:
        """Forget completions, the request log and the rate-limit windows (users stay)."""
        self._client().post("/sandbox/reset").raise_for_status()

    def _get(self, path: str) -> Any:
        response = self._client().get(path)
        response.raise_for_status()
        return response.json()["data"]

    def _client(self) -> httpx.Client:
        if self._control is None:
            self._control = httpx.Client(base_url=self.base_url, timeout=10, verify=_tls())
        return self._control


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context per process: httpx builds one per client otherwise (~0.2-0.5 s each)."""
    return ssl.create_default_context()


class _Server(uvicorn.Server):
    """uvicorn, cutting the app's pending delays short when shutdown starts (else up to 30 s)."""

    def __init__(self, app: SandboxApp, **options: Any) -> None:
        config = uvicorn.Config(app, lifespan="off", http="h11", access_log=False, **options)
        super().__init__(config)
        self.app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Release waiting requests (they are dropped), then shut down as uvicorn does."""
        self.app.close()
        await super().shutdown(sockets)


def start_sandbox(
    config: SandboxConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> RunningSandbox:
    """Serve a sandbox in a background thread; port 0 picks a free port (see ``base_url``)."""
    config = config or SandboxConfig()
    app = SandboxApp(config)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # so asyncio sets NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = _Server(app, log_config=None, log_level="warning", timeout_graceful_shutdown=5)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as exc:  # reported by start_sandbox below
            failures.append(exc)
        finally:
            sock.close()

    thread = threading.Thread(target=run, name=f"sandbox-{sock.getsockname()[1]}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.005)
    if not server.started:
        server.should_exit = True
        thread.join(timeout=5)
        app.close_store()
        raise RuntimeError(f"sandbox did not start on {host}:{port}: {failures or 'timeout'}")
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    return RunningSandbox(f"http://{shown}:{bound}", config, app, server, thread)


class Sandbox:
    """``with Sandbox(config) as running:`` — a sandbox for the duration of the block."""

    def __init__(
        self, config: SandboxConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._args = (config, host, port)
        self._running: RunningSandbox | None = None

    def __enter__(self) -> RunningSandbox:
        self._running = start_sandbox(*self._args)
        return self._running

    def __exit__(self, *exc_info: object) -> None:
        if self._running is not None:
            self._running.stop()


def serve_forever(config: SandboxConfig, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve in the foreground until SIGINT/SIGTERM (the ``lms-sync sandbox`` command)."""
    app = SandboxApp(config)
    try:
        _Server(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=5).run()
    finally:
        app.close_store()
