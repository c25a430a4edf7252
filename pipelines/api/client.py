"""The StackOne client: async httpx pools behind one shared rate limiter, DESIGN §7 retries.

``submit`` sends one completion and turns every answer into a ``Result`` (or raises ``AuthError`` /
``AbortError`` when the run must stop; a 403 refuses its account); ``deliver`` runs a ``WorkerPool``
over the submissions; ``find_users``/``iter_all_users`` page through ``GET /unified/lms/users``
(``pages``: any list). The API key never appears in logs, exception texts, reprs or results.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import httpx
from pydantic import SecretStr

from pipelines.api.account_refusals import RefusedAccounts
from pipelines.api.client_stats import ClientStats
from pipelines.api.completions import Result, Submission, unsendable
from pipelines.api.connection_pools import open_pools, send_on_least_busy
from pipelines.api.cursor_pages import cursor_pages
from pipelines.api.endpoints import USERS_PATH, completions_path
from pipelines.api.halt import Halt, Halted, wait_unless_halted
from pipelines.api.ratelimit import RateLimiter
from pipelines.api.redaction import ApiKeyAuth, Redactor
from pipelines.api.retry_policy import (
    MAX_THROTTLED,
    THROTTLE_STATUSES,
    TRANSIENT_ERRORS,
    Tries,
    UnreachableGuard,
    backoff_delay,
    is_retried_server_error,
    retry_after,
)
from pipelines.api.status_mapping import Answer, PayloadReader, lookup_payload, submission_result
from pipelines.api.user_pages import user_filter
from pipelines.api.worker_pool import WorkerPool
from pipelines.core.errors import AbortError, SettingsError
from pipelines.core.settings import DEFAULT_BASE_URL, Settings

__all__ = ["StackOneClient"]

logger = logging.getLogger(__name__)


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
        self._redact = Redactor(secret)
        self.refused = RefusedAccounts(self._redact, self.base_url)  # accounts answered 403
        self._unreachable = UnreachableGuard(self.base_url, max_attempts)
        self._pools = open_pools(
            self.base_url,
            ApiKeyAuth(secret),
            concurrency,
            httpx.Timeout(read_timeout, connect=connect_timeout),
            transport,
        )
        self._in_flight = [0] * len(self._pools)
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
        isolate_accounts: bool = False,
    ) -> None:
        """Submit everything with ``concurrency`` workers, calling ``on_result`` as each ends.

        On an abort (401/403/501), an error in ``on_result`` or the source, or ``stop`` being set:
        take no new rows, let requests in flight finish (and report them), then return — or
        re-raise the first error. Rows left without a result are not reported (the caller marks
        them pending); ``on_unanswered`` gets those that may have reached the API (in doubt).
        ``isolate_accounts``: a 403 fails its account's rows (``http_403``), the others go on.
        """
        if stop is not None and stop.is_set():
            return
        workers = WorkerPool(
            self._submit, self.concurrency, on_result, stop=stop, on_unanswered=on_unanswered,
            isolate_accounts=isolate_accounts,
        )  # fmt: skip
        await workers.run(submissions)

    async def _submit(self, submission: Submission, halt: Halt | None) -> Result:
        """``submit`` that leaves the row unsent (raises ``Halted``) once ``halt`` is set."""
        failed = unsendable(submission)
        if failed is not None:
            return failed
        answer = await self._request(
            "POST",
            completions_path(submission.user_id),
            submission.account_id,
            content=submission.body,
            halt=halt,
        )
        return submission_result(submission.key, answer, self._redact, self.base_url)

    # -- users --------------------------------------------------------------------------------

    async def find_users(
        self, account_id: str, *, email: str | None = None,
        external_reference: str | None = None, page_size: int = 100,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Users matching exactly one of ``email`` / ``external_reference`` (all pages)."""
        filters = user_filter(email, external_reference)
        return [user async for user in self.pages(USERS_PATH, account_id, page_size, filters)]

    async def iter_all_users(
        self, account_id: str, page_size: int = 100
    ) -> AsyncIterator[dict[str, Any]]:
        """Every user of the account, page by page (following the ``next`` cursor)."""
        async for user in self.pages(USERS_PATH, account_id, page_size, {}):
            yield user

    def pages(
        self, path: str, account_id: str, page_size: int, filters: dict[str, str],
        read: PayloadReader = lookup_payload, what: str = "user list",
    ) -> AsyncIterator[dict[str, Any]]:  # fmt: skip
        """The items of ``GET path`` pages until ``next`` is null: each page one rate-limited,
        retried request whose answer ``read`` turns into a JSON object (or an error)."""

        async def fetch(params: dict[str, str]) -> dict[str, Any]:
            answer = await self._request("GET", path, account_id, params=params)
            return read(answer, self._redact, self.base_url)

        return cursor_pages(fetch, page_size, filters, what)

    # -- one request with retries ---------------------------------------------------------------

    async def _request(
        self, method: str, path: str, account_id: str, *, params: dict[str, str] | None = None,
        content: bytes | None = None, halt: Halt | None = None,
    ) -> Answer:  # fmt: skip
        """Send through the limiter, waiting out 429/408 and retrying 5xx and transport errors;
        nothing is sent for an account answered 403 (``AccountRefused``)."""
        headers = {"x-account-id": account_id}
        if content is not None:
            headers["Content-Type"] = "application/json"
        options: dict[str, Any] = {"params": params, "content": content, "headers": headers}
        tries = Tries()
        while True:
            self.refused.check(account_id, tries.attempts)  # refused: no slot, no send
            slot = await wait_unless_halted(
                self.limiter.hold(), halt, maybe_sent=tries.failures > 0
            )
            self.refused.check(account_id, tries.attempts, slot)  # refused while it waited
            if halt is not None and halt.is_set:
                slot.unused()
                raise Halted(maybe_sent=tries.failures > 0)
            if tries.attempts:
                self.stats.retries += 1
            tries.attempts += 1
            self.stats.sent += 1
            try:
                response = await send_on_least_busy(
                    self._pools, self._in_flight, slot, method, path, **options
                )
            except TRANSIENT_ERRORS as exc:
                answer = await self._after_no_answer(exc, method, tries, halt)
            except httpx.HTTPError as exc:  # not retryable: a bad URL, protocol or header
                message = self._redact(f"{type(exc).__name__}: {exc}")
                raise AbortError(f"request could not be sent: {message}") from None
            else:
                answer = await self._after_answer(response, method, tries, halt)
            if answer is not None:
                self.refused.check_answer(answer, account_id)
                return answer

    async def _after_no_answer(
        self, exc: Exception, method: str, tries: Tries, halt: Halt | None
    ) -> Answer | None:
        """After a transport error: back off and return None to retry, or the exhausted answer."""
        self.stats.transport_errors += 1
        tries.failures += 1
        error = self._redact(f"{type(exc).__name__}: {exc}".rstrip(": "))
        if tries.failures >= self._max_attempts:
            self._unreachable.unanswered(error)
            return Answer(None, tries.attempts, error, exhausted=True)
        logger.debug("retrying a %s after %s", method, error)
        await self._back_off(tries, halt)
        return None

    async def _after_answer(
        self, response: httpx.Response, method: str, tries: Tries, halt: Halt | None
    ) -> Answer | None:
        """Pause on 429/408, back off on a retried 5xx (None: try again), else the final answer."""
        self._unreachable.answered()
        status = response.status_code
        self.stats.by_status[status] += 1
        if status in THROTTLE_STATUSES:
            if status == 429:
                self.stats.status_429 += 1
            tries.throttled += 1
            if tries.throttled >= MAX_THROTTLED:
                return Answer(response, tries.attempts, exhausted=True)
            pause = retry_after(response, self._wall_clock)
            self.stats.pauses.append(pause)
            logger.info("HTTP %d: pausing all requests for %.1f s", status, pause)
            self.limiter.pause(pause)
            return None
        if is_retried_server_error(status):
            tries.failures += 1
            if tries.failures >= self._max_attempts:
                return Answer(response, tries.attempts, exhausted=True)
            logger.debug("retrying a %s after HTTP %d", method, status)
            await self._back_off(tries, halt)
            return None
        return Answer(response, tries.attempts)

    async def _back_off(self, tries: Tries, halt: Halt | None) -> None:
        """Sleep the full-jitter backoff of ``tries.failures``; a halt cuts it short."""
        delay = backoff_delay(tries.failures, self._backoff_base, self._backoff_max, self._jitter)
        await wait_unless_halted(self._sleep(delay), halt, maybe_sent=True)
