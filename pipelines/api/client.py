"""The StackOne client: async httpx, one shared rate limiter, DESIGN §7 status handling.

``submit`` sends one completion and turns every answer into a ``Result`` (or raises ``AuthError`` /
``AbortError`` when the run must stop); ``deliver`` runs a fixed pool of workers over a bounded
queue; ``find_users``/``iter_all_users`` page through ``GET /unified/lms/users``. The API key never
appears in logs, exception texts, reprs or results.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import inspect
import logging
import math
import random
import re
import time
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from pipelines.api.ratelimit import RateLimiter, Slot
from pipelines.core.errors import AbortError, ApiError, AuthError, SettingsError
from pipelines.core.outcomes import RowOutcome
from pipelines.core.settings import DEFAULT_BASE_URL, Settings

__all__ = ["ClientStats", "Result", "StackOneClient", "Submission", "completions_path"]

logger = logging.getLogger(__name__)

USERS_PATH = "/unified/lms/users"
DEFAULT_RETRY_AFTER = 5.0  # seconds to pause on a 429/408 without a usable Retry-After
MAX_RETRY_AFTER = 900.0  # a longer Retry-After is capped (the next 429 asks again)
MAX_THROTTLED = 50  # 429/408 answers one request waits out before it is retries_exhausted
UNREACHABLE_AFTER = 10  # rows in a row that got no HTTP answer at all: the API is unreachable
POOL_CONNECTIONS = 16  # connections per httpx pool: httpcore's per-request bookkeeping grows
# with the square of a pool's size (encode/httpcore#1035), so a high concurrency gets several pools
_MESSAGE_LIMIT = 1000
_FAILED_CODES = {400: "http_400", 404: "http_404", 412: "http_412", 422: "http_422"}
_THROTTLE_STATUSES = frozenset({408, 429})
# No HTTP answer, but trying again may get one (DNS, refused, reset, dropped, timeouts, proxy).
_TRANSIENT_ERRORS = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    httpx.ProxyError,
)
_T = TypeVar("_T")
_HEADER_VALUE = re.compile(r"^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$")

@dataclass(frozen=True)
class Submission:
    """One completion to create: idempotency ``key``, target account and user, JSON ``body``."""

    key: str
    account_id: str
    user_id: str
    body: bytes = field(repr=False)  # pre-serialised JSON; may hold personal data


@dataclass(frozen=True)
class Result:
    """How one submission ended; ``code`` is a §6 error code (or ``http_409`` for a duplicate)."""

    key: str
    outcome: RowOutcome  # delivered, duplicate (409) or failed
    code: str | None
    http_status: int | None
    message: str | None
    remote_id: str | None
    attempts: int


@dataclass
class ClientStats:
    """Request counters for the run report (every request, retries and lookups included)."""

    sent: int = 0
    retries: int = 0
    status_429: int = 0
    transport_errors: int = 0
    by_status: Counter[int] = field(default_factory=Counter)


@dataclass(frozen=True)
class _Answer:
    """The last answer of a request after retries: a response, or the last transport error."""

    response: httpx.Response | None
    attempts: int
    error: str | None = None
    exhausted: bool = False


class _Halted(Exception):
    """Internal: ``deliver`` is stopping, so this row is left without a result (pending).

    ``maybe_sent``: an earlier attempt got no answer or a 5xx, so the API may have stored it.
    """

    def __init__(self, maybe_sent: bool = False) -> None:
        super().__init__()
        self.maybe_sent = maybe_sent


class _Unreachable(AbortError):
    """Internal: too many rows in a row got no answer; the last one may have been stored."""


class _Halt:
    """A ``deliver`` run's stop switch: once set, waits (limiter, backoff) end in ``_Halted``.

    Waits are awaited directly (no helper task, so a limiter grant turns into a send at once);
    ``set`` cancels the tasks waiting and ``wait`` turns that cancellation into ``_Halted``.
    """

    def __init__(self) -> None:
        self.is_set = False
        self._waiting: set[asyncio.Task[Any]] = set()

    def set(self) -> None:
        """Stop: cut every wait in progress short; later waits end at once."""
        if not self.is_set:
            self.is_set = True
            for task in self._waiting:
                task.cancel()

    async def wait(self, waiting: Awaitable[_T]) -> _T:
        """Await ``waiting`` unless stopped meanwhile (then ``_Halted``)."""
        task = asyncio.current_task()
        if self.is_set or task is None:
            if inspect.iscoroutine(waiting):
                waiting.close()  # never started: no "was never awaited" warning
            raise _Halted
        self._waiting.add(task)
        try:
            return await waiting
        except asyncio.CancelledError:
            if self.is_set and task.uncancel() == 0:  # our cancel, not the caller's
                raise _Halted from None
            raise
        finally:
            self._waiting.discard(task)


class _ApiKeyAuth(httpx.Auth):
    """HTTP Basic with the API key as user name and an empty password; redacted in its repr."""

    def __init__(self, api_key: SecretStr) -> None:
        token = base64.b64encode(f"{api_key.get_secret_value()}:".encode()).decode("ascii")
        self._header = SecretStr(f"Basic {token}")

    def auth_flow(self, request: httpx.Request) -> Any:
        """Set the Authorization header on every request."""
        request.headers["Authorization"] = self._header.get_secret_value()
        yield request

    def __repr__(self) -> str:
        return "_ApiKeyAuth(<redacted>)"


class _Redactor:
    """Replaces the API key, its Basic token and its URL-encoded form with ``[REDACTED]``."""

    def __init__(self, api_key: SecretStr) -> None:
        key = api_key.get_secret_value()
        forms = {key, base64.b64encode(f"{key}:".encode()).decode(), quote(key, safe="")}
        self._forms = sorted((form for form in forms if form), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for form in self._forms:
            text = text.replace(form, "[REDACTED]")
        return text


def completions_path(user_id: str) -> str:
    """``/unified/lms/users/{id}/completions`` with ``id`` percent-encoded as one path segment."""
    segment = quote(user_id, safe="")
    if segment in (".", ".."):  # would be removed as a dot-segment, reaching another endpoint
        segment = segment.replace(".", "%2E")
    return f"{USERS_PATH}/{segment}/completions"


class StackOneClient:
    """Keep-alive ``httpx.AsyncClient`` pools (``concurrency`` connections in all) behind a limiter.

    Use as ``async with StackOneClient.from_settings(settings) as client:``. Inject ``transport``
    (e.g. ``httpx.MockTransport``) in tests, and ``sleep`` to skip backoff waits.
    """

    def __init__(
        self,
        api_key: SecretStr | str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        limiter: RateLimiter | None = None,
        concurrency: int = 32,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        max_attempts: int = 6,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        wall_clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        secret = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        if not secret.get_secret_value():
            raise SettingsError("the StackOne API key is empty (set STACKONE_API_KEY)")
        if concurrency < 1 or max_attempts < 1:
            raise ValueError("concurrency and max_attempts must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.limiter = limiter or RateLimiter(950, 60.0)
        self.concurrency = concurrency
        self.stats = ClientStats()
        self._max_attempts = max_attempts
        self._backoff_base, self._backoff_max = backoff_base, backoff_max
        self._sleep, self._wall_clock, self._jitter = sleep, wall_clock, jitter
        self._redact = _Redactor(secret)
        self._unanswered_in_a_row = 0
        pools = 1 if transport is not None else math.ceil(concurrency / POOL_CONNECTIONS)
        size = math.ceil(concurrency / pools)
        tls = httpx.create_ssl_context() if transport is None else True  # built once, ~0.2 s
        self._pools = [
            httpx.AsyncClient(
                base_url=self.base_url,
                auth=_ApiKeyAuth(secret),
                headers={"Accept": "application/json", "User-Agent": "lms-sync"},
                timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
                limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
                transport=transport,
                verify=tls,
                trust_env=True,
                follow_redirects=False,
            )
            for _ in range(pools)
        ]
        self._in_flight = [0] * pools
        self._http = self._pools[0]

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        limiter: RateLimiter | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> StackOneClient:
        """Build from run settings; the limiter defaults to ``settings.rate_limit``."""
        if settings.api_key is None:
            raise SettingsError("STACKONE_API_KEY is not set; it is needed to deliver")
        return cls(
            settings.api_key,
            base_url=settings.base_url,
            limiter=limiter or RateLimiter(*settings.rate_limit),
            concurrency=settings.concurrency,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            max_attempts=settings.max_attempts,
            backoff_base=settings.backoff_base,
            backoff_max=settings.backoff_max,
            transport=transport,
            sleep=sleep,
        )

    def __repr__(self) -> str:
        return f"StackOneClient({self.base_url!r}, concurrency={self.concurrency})"

    async def __aenter__(self) -> StackOneClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pools."""
        for pool in self._pools:
            await pool.aclose()

    # -- completions --------------------------------------------------------------------------

    async def submit(self, submission: Submission) -> Result:
        """Create one completion; 401/403 raise ``AuthError``, 501 or no answer ``AbortError``."""
        return await self._submit(submission, None)

    async def deliver(
        self,
        submissions: AsyncIterable[Submission] | Iterable[Submission],
        on_result: Callable[[Result], None],
        *,
        stop: asyncio.Event | None = None,
        on_unanswered: Callable[[Submission], None] | None = None,
    ) -> None:
        """Submit everything with ``concurrency`` workers, calling ``on_result`` as each ends.

        On an abort (401/403/501), an error in ``on_result`` or the source, or ``stop`` being set:
        take no new rows, let requests in flight finish (and report them), then return — or
        re-raise the first error. Rows left without a result are not reported to ``on_result``
        (the caller marks them pending); ``on_unanswered`` gets those among them that may have
        reached the API all the same (a request got no answer or a 5xx): they stay in doubt.
        """
        if stop is not None and stop.is_set():
            return
        halt = _Halt()
        queue: asyncio.Queue[Submission | None] = asyncio.Queue(maxsize=2 * self.concurrency)
        errors: list[Exception] = []

        def halt_all() -> None:
            if halt.is_set:
                return
            halt.set()
            if asyncio.current_task() is not producer:
                producer.cancel()
            while not queue.empty():  # rows queued but never taken stay pending
                queue.get_nowait()
            for _ in range(self.concurrency):
                queue.put_nowait(None)

        def stopping() -> bool:
            if stop is not None and stop.is_set():  # before the watcher's callback has run
                halt_all()
            return halt.is_set

        async def produce() -> None:
            try:
                if isinstance(submissions, AsyncIterable):
                    async for submission in submissions:
                        await queue.put(submission)
                else:
                    for submission in submissions:
                        await queue.put(submission)
            except Exception as exc:
                errors.append(exc)
                halt_all()
                return
            for _ in range(self.concurrency):
                await queue.put(None)

        async def work() -> None:
            while (submission := await queue.get()) is not None and not stopping():
                try:
                    result = await self._submit(submission, halt)
                except _Halted as halted:
                    if halted.maybe_sent and on_unanswered is not None:
                        on_unanswered(submission)
                    return
                except Exception as exc:
                    if isinstance(exc, _Unreachable) and on_unanswered is not None:
                        on_unanswered(submission)
                    errors.append(exc)
                    halt_all()
                    return
                try:
                    on_result(result)
                except Exception as exc:
                    errors.append(exc)
                    halt_all()
                    return

        producer = asyncio.create_task(produce())
        watcher = asyncio.create_task(stop.wait()) if stop is not None else None
        if watcher is not None:
            watcher.add_done_callback(lambda task: None if task.cancelled() else halt_all())
        try:
            await asyncio.gather(*(work() for _ in range(self.concurrency)))
        finally:
            for task in (producer, watcher):
                if task is not None and not task.done():
                    task.cancel()
            await asyncio.gather(producer, *([watcher] if watcher else []), return_exceptions=True)
        if errors:
            if len(errors) > 1:
                logger.warning("%d more workers stopped with errors", len(errors) - 1)
            raise errors[0]

    async def _submit(self, submission: Submission, halt: _Halt | None) -> Result:
        """``submit`` that leaves the row unsent (raises ``_Halted``) once ``halt`` is set."""
        key = submission.key
        if not submission.user_id.strip():
            return Result(key, RowOutcome.FAILED, "invalid_user", None, "user id is blank", None, 0)
        if not _HEADER_VALUE.match(submission.account_id):
            message = "account id is blank or has characters an HTTP header cannot carry"
            return Result(key, RowOutcome.FAILED, "invalid_account", None, message, None, 0)
        answer = await self._request(
            "POST",
            completions_path(submission.user_id),
            submission.account_id,
            content=submission.body,
            halt=halt,
        )

        def result(outcome: RowOutcome, code: str | None, message: str | None = None) -> Result:
            status = answer.response.status_code if answer.response is not None else None
            return Result(key, outcome, code, status, message, remote_id, answer.attempts)

        remote_id: str | None = None
        if answer.response is None:
            return result(RowOutcome.FAILED, "retries_exhausted", answer.error)
        status = answer.response.status_code
        payload = _json(answer.response)
        message = self._message(payload, answer.response)
        if answer.exhausted:
            return result(RowOutcome.FAILED, "retries_exhausted", message)
        if 200 <= status < 300:
            remote_id = _remote_id(payload)
            return result(RowOutcome.DELIVERED, None)
        if status == 409:
            remote_id = _remote_id(payload)
            return result(RowOutcome.DUPLICATE, "http_409", message)
        self._raise_if_terminal(status, message)
        code = _FAILED_CODES.get(status, "http_4xx" if 400 <= status < 500 else f"http_{status}")
        return result(RowOutcome.FAILED, code, message)

    # -- users --------------------------------------------------------------------------------

    async def find_users(
        self,
        account_id: str,
        *,
        email: str | None = None,
        external_reference: str | None = None,
        page_size: int = 100,
    ) -> list[dict[str, Any]]:
        """Users matching exactly one of ``email`` / ``external_reference`` (all pages)."""
        if (email is None) == (external_reference is None):
            raise ValueError("give exactly one of email or external_reference")
        filters = (
            {"filter[email]": email}
            if email is not None
            else {"filter[external_reference]": str(external_reference)}
        )
        return [user async for user in self._pages(account_id, page_size, filters)]

    async def iter_all_users(
        self, account_id: str, page_size: int = 100
    ) -> AsyncIterator[dict[str, Any]]:
        """Every user of the account, page by page (following the ``next`` cursor)."""
        async for user in self._pages(account_id, page_size, {}):
            yield user

    async def _pages(
        self, account_id: str, page_size: int, filters: dict[str, str]
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield the ``data`` items of ``GET /unified/lms/users`` pages until ``next`` is null."""
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            params = {**filters, "page_size": str(page_size)}
            if cursor:
                params["next"] = cursor
            answer = await self._request("GET", USERS_PATH, account_id, params=params)
            payload = self._lookup_payload(answer)
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

    def _lookup_payload(self, answer: _Answer) -> dict[str, Any]:
        """The JSON object of a successful lookup, else raise ``ApiError``/``AbortError``."""
        response = answer.response
        if response is None:
            raise ApiError(f"user lookup: {answer.error}", code="retries_exhausted", retryable=True)
        status = response.status_code
        payload = _json(response)
        if answer.exhausted or not 200 <= status < 300:
            message = self._message(payload, response)
            self._raise_if_terminal(status, message)
            code = (
                "retries_exhausted"
                if answer.exhausted
                else _FAILED_CODES.get(status, "http_4xx" if status < 500 else f"http_{status}")
            )
            raise ApiError(
                f"user lookup: HTTP {status}: {message}",
                code=code,
                http_status=status,
                retryable=answer.exhausted,
            )
        if not isinstance(payload, dict):
            raise ApiError("user lookup: the answer is not a JSON object", code="http_4xx")
        return payload

    # -- one request with retries ---------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        account_id: str,
        *,
        params: dict[str, str] | None = None,
        content: bytes | None = None,
        halt: _Halt | None = None,
    ) -> _Answer:
        """Send through the limiter, waiting out 429/408 and retrying 5xx and transport errors."""
        headers = {"x-account-id": account_id}
        if content is not None:
            headers["Content-Type"] = "application/json"
        attempts = failures = throttled = 0
        while True:
            slot = await self._wait(self.limiter.hold(), halt, maybe_sent=failures > 0)
            if halt is not None and halt.is_set:
                slot.unused()
                raise _Halted(maybe_sent=failures > 0)
            if attempts:
                self.stats.retries += 1
            attempts += 1
            self.stats.sent += 1
            try:
                response = await self._send(
                    slot, method, path, params=params, content=content, headers=headers
                )
            except _TRANSIENT_ERRORS as exc:
                self.stats.transport_errors += 1
                failures += 1
                error = self._redact(f"{type(exc).__name__}: {exc}".rstrip(": "))
                if failures >= self._max_attempts:
                    return self._unanswered(_Answer(None, attempts, error, exhausted=True))
                logger.debug("retrying a %s after %s", method, error)
                await self._wait(self._sleep(self._backoff(failures)), halt, maybe_sent=True)
                continue
            except httpx.HTTPError as exc:  # not retryable: a bad URL, protocol or header
                message = self._redact(f"{type(exc).__name__}: {exc}")
                raise AbortError(f"request could not be sent: {message}") from None
            self._unanswered_in_a_row = 0
            status = response.status_code
            self.stats.by_status[status] += 1
            if status in _THROTTLE_STATUSES:
                if status == 429:
                    self.stats.status_429 += 1
                throttled += 1
                if throttled >= MAX_THROTTLED:
                    return _Answer(response, attempts, exhausted=True)
                pause = self._retry_after(response)
                logger.info("HTTP %d: pausing all requests for %.1f s", status, pause)
                self.limiter.pause(pause)
                continue
            if status >= 500 and status != 501:
                failures += 1
                if failures >= self._max_attempts:
                    return _Answer(response, attempts, exhausted=True)
                logger.debug("retrying a %s after HTTP %d", method, status)
                await self._wait(self._sleep(self._backoff(failures)), halt, maybe_sent=True)
                continue
            return _Answer(response, attempts)

    async def _send(self, slot: Slot, method: str, path: str, **options: Any) -> httpx.Response:
        """One HTTP request on the least busy pool; its slot is stamped when the headers are written."""
        pool = min(range(len(self._pools)), key=self._in_flight.__getitem__)
        self._in_flight[pool] += 1
        try:
            return await self._pools[pool].request(
                method, path, extensions={"trace": _stamp_when_sent(slot)}, **options
            )
        finally:
            self._in_flight[pool] -= 1
            slot.sent()  # no trace event (a mock transport, a failed connect): counted as sent now

    def _unanswered(self, answer: _Answer) -> _Answer:
        """Count rows that got no HTTP answer; ``UNREACHABLE_AFTER`` in a row abort the run."""
        self._unanswered_in_a_row += 1
        if self._unanswered_in_a_row >= UNREACHABLE_AFTER:
            raise _Unreachable(
                f"the API at {self.base_url} is unreachable: {UNREACHABLE_AFTER} requests in a "
                f"row got no answer after {self._max_attempts} attempts ({answer.error})"
            )
        return answer

    @staticmethod
    async def _wait(waiting: Awaitable[_T], halt: _Halt | None, *, maybe_sent: bool) -> _T:
        """Await a limiter grant or a backoff sleep; with ``halt``, stopping cuts it short.

        ``maybe_sent``: an earlier attempt of this request may have been stored (see ``_Halted``).
        """
        if halt is None:
            return await waiting
        try:
            return await halt.wait(waiting)
        except _Halted:
            raise _Halted(maybe_sent) from None

    def _backoff(self, failures: int) -> float:
        """Full-jitter exponential backoff: uniform in [0, min(max, base * 2**(failures-1))]."""
        return self._jitter() * min(self._backoff_max, self._backoff_base * 2 ** (failures - 1))

    def _retry_after(self, response: httpx.Response) -> float:
        """Seconds to pause from ``Retry-After`` (seconds or HTTP date), bounded and defaulted."""
        value = response.headers.get("retry-after", "").strip()
        if not value:
            return DEFAULT_RETRY_AFTER
        try:
            seconds = float(value)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError):
                return DEFAULT_RETRY_AFTER
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            seconds = when.timestamp() - self._wall_clock()
        if not math.isfinite(seconds):
            return DEFAULT_RETRY_AFTER
        return min(max(seconds, 0.0), MAX_RETRY_AFTER)

    def _message(self, payload: Any, response: httpx.Response) -> str:
        """The server's message (StackOne error body), redacted and bounded."""
        message: Any = payload.get("message") if isinstance(payload, dict) else None
        if isinstance(message, list):
            message = "; ".join(str(part) for part in message)
        if not message:
            message = response.text.strip()[:300] or response.reason_phrase or "no message"
        text = self._redact(str(message))
        return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"

    def _raise_if_terminal(self, status: int, message: str) -> None:
        """401/403 raise ``AuthError``, 501 raises ``AbortError``: the run cannot go on."""
        if status in (401, 403):
            raise AuthError(f"HTTP {status} from {self.base_url}: {message}", http_status=status)
        if status == 501:
            raise AbortError(f"HTTP 501 from {self.base_url}: {message}", http_status=status)


def _stamp_when_sent(slot: Slot) -> Callable[[str, dict[str, Any]], Awaitable[None]]:
    """An httpx ``trace`` hook that stamps ``slot`` once the request headers are on the wire.

    The server counts a request on reading it; stamping at the grant instead would let the time
    spent opening a connection or waiting for the event loop push N+1 sends into its window.
    """

    async def trace(event: str, info: dict[str, Any]) -> None:
        if event.endswith("send_request_headers.complete"):
            slot.sent()

    return trace


def _json(response: httpx.Response) -> Any:
    """The response body as JSON, or None when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None


def _remote_id(payload: Any) -> str | None:
    """``data.remote_id`` (else ``data.id``) of a StackOne answer, when present."""
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, dict):
        return None
    value = data.get("remote_id") or data.get("id")
    return str(value) if value is not None else None
