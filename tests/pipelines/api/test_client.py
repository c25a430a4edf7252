"""Tests for pipelines.api.client: every §7 status path, the worker pool's orderly stop, key redaction.

Unit tests answer with ``httpx.MockTransport`` on a virtual-time event loop (Retry-After pauses and
latencies cost no real time); integration tests deliver to the sandbox over real HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from pipelines.api.client import StackOneClient
from pipelines.api.completions import Result, Submission
from pipelines.api.endpoints import completions_path
from pipelines.api.ratelimit import RateLimiter
from pipelines.api.retry_policy import DEFAULT_RETRY_AFTER, UNREACHABLE_AFTER
from pipelines.core.errors import AbortError, ApiError, AuthError, SettingsError
from pipelines.core.settings import Settings
from pipelines.sandbox import RunningSandbox
from tests.conftest import SANDBOX_ACCOUNT, SANDBOX_KEY, max_requests_in_window
from tests.pipelines.api.test_ratelimit import VirtualTimeLoop, run_virtual

KEY = "sk_test_NEVER_SHOW_ME_42"
TOKEN = base64.b64encode(f"{KEY}:".encode()).decode()
BASE = "https://api.test"
NOW = 1_700_000_000.0
Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


def body(reference: str = "COURSE-1") -> bytes:
    """A valid pre-serialised completion body."""
    return json.dumps(
        {
            "learning_object_external_reference": reference,
            "completed_at": "2024-05-01T10:00:00.000Z",
        }
    ).encode()


def sub(n: int = 0, user: str = "u-1", account: str = "acct-1") -> Submission:
    """Submission number ``n`` (its key and course code carry ``n``)."""
    return Submission(key=f"k{n}", account_id=account, user_id=user, body=body(f"C{n}"))


def answer(status: int, message: str = "", headers: dict[str, str] | None = None) -> httpx.Response:
    """A StackOne-shaped answer: 201 with ids, otherwise the error body with ``message``."""
    if status == 201:
        payload: dict[str, Any] = {
            "statusCode": 201,
            "message": "Record created successfully.",
            "timestamp": "2024-05-01T10:00:00.000Z",
            "data": {"id": "stk-1", "remote_id": "remote-1"},
        }
    else:
        payload = {"statusCode": status, "message": message or f"error {status}", "timestamp": "t"}
        if status == 409:
            payload["data"] = {"id": "stk-existing"}
    return httpx.Response(status, json=payload, headers=headers)


class Api:
    """A scripted fake API: answers come from ``script`` (one per request, last one repeats)."""

    def __init__(
        self, *script: httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]
    ) -> None:
        self.script = list(script) or [answer(201)]
        self.requests: list[httpx.Request] = []
        self.times: list[float] = []
        self.latency: Callable[[], float] = lambda: 0.0
        self.in_flight = 0
        self.most_in_flight = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        """Record the request, wait the latency (virtual time), then answer or raise."""
        self.requests.append(request)
        self.times.append(asyncio.get_running_loop().time())
        step = self.script[min(len(self.requests), len(self.script)) - 1]
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.latency())
        finally:
            self.in_flight -= 1
        if isinstance(step, Exception):
            raise step
        return step(request) if callable(step) else step


class Sleeps:
    """An injected backoff ``sleep`` that records the delays and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def client_for(
    api: Api,
    loop: asyncio.AbstractEventLoop,
    *,
    sleeps: Sleeps | None = None,
    concurrency: int = 4,
    max_attempts: int = 3,
    limiter: RateLimiter | None = None,
) -> StackOneClient:
    """A client on ``api`` through MockTransport, limiter on the loop's (virtual) clock."""
    return StackOneClient(
        KEY,
        base_url=BASE,
        limiter=limiter or RateLimiter(1_000, 1.0, clock=loop.time),
        concurrency=concurrency,
        max_attempts=max_attempts,
        backoff_base=0.5,
        backoff_max=4.0,
        transport=httpx.MockTransport(api),
        sleep=sleeps or Sleeps(),
        wall_clock=lambda: NOW,
        jitter=lambda: 1.0,
    )


def submit_one(api: Api, submission: Submission | None = None, **options: Any) -> Result:
    """Submit one row to ``api`` on a virtual loop and return its result."""

    async def main(loop: VirtualTimeLoop) -> Result:
        async with client_for(api, loop, **options) as client:
            return await client.submit(submission or sub())

    return run_virtual(main)


# -- one submission: each status ---------------------------------------------------------------


def test_201_is_delivered_with_the_remote_id_and_the_request_is_well_formed() -> None:
    """A 201 is ``delivered``; the POST carries Basic auth (key, empty password), account, body."""
    api = Api(answer(201))
    result = submit_one(api)
    assert result == Result("k0", "delivered", None, 201, None, "remote-1", 1)
    (request,) = api.requests
    assert request.method == "POST"
    assert str(request.url) == f"{BASE}/unified/lms/users/u-1/completions"
    assert request.headers["authorization"] == f"Basic {TOKEN}"
    assert base64.b64decode(TOKEN).decode() == f"{KEY}:"
    assert request.headers["x-account-id"] == "acct-1"
    assert request.headers["content-type"] == "application/json"
    assert request.content == body("C0")


def test_409_is_a_duplicate_not_a_failure() -> None:
    """A 409 (already exists) ends ``duplicate`` with code ``http_409`` and is not retried."""
    api = Api(answer(409, "Record already exists"))
    result = submit_one(api)
    assert (result.outcome, result.code, result.http_status) == ("duplicate", "http_409", 409)
    assert result.remote_id == "stk-existing"
    assert len(api.requests) == 1


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "http_400"), (404, "http_404"), (412, "http_412"), (422, "http_422"), (418, "http_4xx")],
)
def test_client_errors_fail_at_once_with_the_servers_message(status: int, code: str) -> None:
    """400/404/412/422/other 4xx: ``failed`` with the code and the body's message, no retry."""
    api = Api(answer(status, "completed_at: must be UTC"))
    result = submit_one(api)
    assert result == Result("k0", "failed", code, status, "completed_at: must be UTC", None, 1)
    assert len(api.requests) == 1


def test_a_list_message_is_joined_and_a_non_json_body_is_kept_as_text() -> None:
    """NestJS-style message lists are joined; a plain-text error body becomes the message."""
    listed = submit_one(Api(httpx.Response(400, json={"message": ["a is bad", "b is bad"]})))
    assert listed.message == "a is bad; b is bad"
    plain = submit_one(Api(httpx.Response(422, text="<html>nope</html>")))
    assert plain.message == "<html>nope</html>"


def test_429_with_retry_after_seconds_pauses_then_succeeds() -> None:
    """A 429 waits ``Retry-After`` seconds (on the limiter) and retries; it is not a failure."""
    api = Api(answer(429, headers={"Retry-After": "7"}), answer(201))

    async def main(loop: VirtualTimeLoop) -> tuple[Result, StackOneClient]:
        async with client_for(api, loop) as client:
            return await client.submit(sub()), client

    result, client = run_virtual(main)
    assert result.outcome == "delivered" and result.attempts == 2
    assert api.times[1] - api.times[0] >= 7.0
    assert (client.stats.sent, client.stats.status_429, client.stats.retries) == (2, 1, 1)
    assert client.stats.by_status == {429: 1, 201: 1}


def test_429_with_an_http_date_pauses_until_that_date() -> None:
    """``Retry-After`` as an HTTP date 12 s after now pauses 12 s."""
    date = email.utils.format_datetime(datetime.fromtimestamp(NOW + 12, UTC), usegmt=True)
    api = Api(answer(429, headers={"Retry-After": date}), answer(201))
    result = submit_one(api)
    assert result.outcome == "delivered"
    assert api.times[1] - api.times[0] == pytest.approx(12.0)


def test_408_without_retry_after_pauses_the_default_then_succeeds() -> None:
    """A 408 (or 429) with no usable Retry-After pauses a few seconds and retries."""
    api = Api(answer(408), answer(429, headers={"Retry-After": "soon"}), answer(201))
    result = submit_one(api)
    assert result.outcome == "delivered" and result.attempts == 3
    assert api.times[1] - api.times[0] == pytest.approx(DEFAULT_RETRY_AFTER)
    assert api.times[2] - api.times[1] == pytest.approx(DEFAULT_RETRY_AFTER)


def test_a_429_pauses_every_worker_not_just_the_one_that_got_it() -> None:
    """After a 429 with Retry-After 10 no request starts until 10 s later, from any worker."""
    api = Api(answer(201), answer(429, headers={"Retry-After": "10"}), answer(201))
    latencies = iter([0.5, 0.2])  # the 429 comes back first, at t = 0.2
    api.latency = lambda: next(latencies, 0.5)

    async def main(loop: VirtualTimeLoop) -> list[Result]:
        results: list[Result] = []
        async with client_for(api, loop, concurrency=4) as client:
            await client.deliver([sub(n) for n in range(12)], results.append)
        return results

    results = run_virtual(main)
    assert [r.outcome for r in results] == ["delivered"] * 12
    first_wave = [t for t in api.times if t == 0.0]
    assert len(first_wave) == 4  # started before the 429 came back
    assert all(t >= 10.2 for t in api.times[4:])


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_back_off_and_then_succeed(status: int) -> None:
    """5xx is retried after exponential backoff (0.5 s, 1 s, …) and can still be delivered."""
    sleeps = Sleeps()
    api = Api(answer(status), answer(status), answer(201))
    result = submit_one(api, sleeps=sleeps)
    assert result.outcome == "delivered" and result.attempts == 3
    assert sleeps.delays == [0.5, 1.0]


def test_server_errors_until_the_attempts_run_out_are_retries_exhausted() -> None:
    """A 500 on every attempt ends ``retries_exhausted`` with the last status and message."""
    sleeps = Sleeps()
    api = Api(answer(500, "db down"))
    result = submit_one(api, sleeps=sleeps, max_attempts=4)
    assert result == Result("k0", "failed", "retries_exhausted", 500, "db down", None, 4)
    assert sleeps.delays == [0.5, 1.0, 2.0]


def test_backoff_is_capped_and_fully_jittered() -> None:
    """Delays are ``jitter() * min(max, base * 2**n)``: jitter 0.5 halves them, the cap holds."""
    sleeps = Sleeps()
    api = Api(answer(503))

    async def main(loop: VirtualTimeLoop) -> Result:
        client = client_for(api, loop, sleeps=sleeps, max_attempts=7)
        client._jitter = lambda: 0.5
        async with client:
            return await client.submit(sub())

    run_virtual(main)
    assert sleeps.delays == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]


def test_connection_errors_and_dropped_connections_are_retried() -> None:
    """A refused connection, a dropped one (RemoteProtocolError) and a timeout are transient."""
    api = Api(
        httpx.ConnectError("connection refused"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadTimeout("timed out"),
        answer(201),
    )

    async def main(loop: VirtualTimeLoop) -> tuple[Result, StackOneClient]:
        async with client_for(api, loop, max_attempts=4) as client:
            return await client.submit(sub()), client

    result, client = run_virtual(main)
    assert result.outcome == "delivered" and result.attempts == 4
    assert client.stats.transport_errors == 3
    assert client.stats.retries == 3


def test_no_answer_until_the_attempts_run_out_is_retries_exhausted() -> None:
    """Timeouts on every attempt end ``retries_exhausted`` with no status and the error named."""
    result = submit_one(Api(httpx.ReadTimeout("read timed out")), max_attempts=2)
    assert (result.outcome, result.code, result.http_status) == (
        "failed",
        "retries_exhausted",
        None,
    )
    assert result.message is not None and "ReadTimeout" in result.message
    assert result.attempts == 2


def test_an_unreachable_api_aborts_the_run() -> None:
    """After ``UNREACHABLE_AFTER`` rows in a row got no answer at all, AbortError ends the run."""
    api = Api(httpx.ConnectError("name or service not known"))

    async def main(loop: VirtualTimeLoop) -> list[Result]:
        results: list[Result] = []
        async with client_for(api, loop, concurrency=1, max_attempts=2) as client:
            with pytest.raises(AbortError, match="unreachable"):
                await client.deliver([sub(n) for n in range(50)], results.append)
        return results

    results = run_virtual(main)
    assert len(results) == UNREACHABLE_AFTER - 1
    assert {r.code for r in results} == {"retries_exhausted"}


@pytest.mark.parametrize(
    ("status", "error"), [(401, AuthError), (403, AuthError), (501, AbortError)]
)
def test_auth_and_not_implemented_raise_terminal_errors(
    status: int, error: type[AbortError]
) -> None:
    """401/403 raise AuthError and 501 AbortError, carrying the status and the server's message."""
    api = Api(answer(status, "bad credentials"))
    with pytest.raises(error, match="bad credentials") as caught:
        submit_one(api)
    assert caught.value.http_status == status
    assert caught.value.exit_code == 3
    assert len(api.requests) == 1


@pytest.mark.parametrize(
    ("user_id", "raw_segment"),
    [
        ("a/b", b"a%2Fb"),
        ("john smith", b"john%20smith"),
        ("50%", b"50%25"),
        ("x?y#z", b"x%3Fy%23z"),
        ("..", b"%2E%2E"),
        ("ü", b"%C3%BC"),
    ],
)
def test_the_user_id_is_percent_encoded_as_one_path_segment(
    user_id: str, raw_segment: bytes
) -> None:
    """Slashes, spaces, ``%``, ``?``, ``#``, dot-segments and non-ASCII stay inside one segment."""
    api = Api(answer(201))
    submit_one(api, sub(user=user_id))
    assert api.requests[0].url.raw_path == b"/unified/lms/users/" + raw_segment + b"/completions"
    assert completions_path(user_id).encode() == api.requests[0].url.raw_path


@pytest.mark.parametrize(
    ("user", "account", "code"),
    [
        (" ", "acct-1", "invalid_user"),
        ("u", "", "invalid_account"),
        ("u", "a\nb", "invalid_account"),
    ],
)
def test_unusable_ids_fail_without_a_request(user: str, account: str, code: str) -> None:
    """A blank user id or an account id no header can carry fails the row; nothing is sent."""
    api = Api(answer(201))
    result = submit_one(api, sub(user=user, account=account))
    assert (result.outcome, result.code, result.attempts) == ("failed", code, 0)
    assert api.requests == []


# -- deliver: the worker pool -------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403, 501])
def test_an_abort_stops_new_work_lets_in_flight_finish_and_reraises(status: int) -> None:
    """After the first 401/403/501 at most ``concurrency`` more requests go out; then re-raise."""
    concurrency = 8
    script: list[httpx.Response] = [answer(201)] * 30 + [answer(status, "nope")]
    api = Api(*script)
    rng = random.Random(3)
    api.latency = lambda: rng.uniform(0.05, 0.5)
    first_abort_seen_after: list[int] = []

    def respond(request: httpx.Request) -> httpx.Response:
        if not first_abort_seen_after:
            first_abort_seen_after.append(len(api.requests))
        return answer(status, "nope")

    api.script[-1] = respond

    async def main(loop: VirtualTimeLoop) -> list[Result]:
        results: list[Result] = []
        async with client_for(api, loop, concurrency=concurrency) as client:
            with pytest.raises(AuthError if status != 501 else AbortError):
                await client.deliver((sub(n) for n in range(500)), results.append)
            assert client.stats.sent == len(api.requests)
        return results

    results = run_virtual(main)
    sent_after_first_abort = len(api.requests) - first_abort_seen_after[0]
    assert sent_after_first_abort <= concurrency
    assert len(results) >= 30 - concurrency
    assert all(r.outcome == "delivered" for r in results)


def test_a_fixed_pool_never_has_more_than_concurrency_requests_in_flight() -> None:
    """Slow answers never lead to more than ``concurrency`` open requests, and all rows finish."""
    api = Api(answer(201))
    api.latency = lambda: 2.0
    pulled: list[int] = []

    def source() -> Iterator[Submission]:
        for n in range(200):
            pulled.append(n)
            yield sub(n)

    async def main(loop: VirtualTimeLoop) -> list[Result]:
        results: list[Result] = []

        def record(result: Result) -> None:
            if not results:  # the source is read ahead by a bounded queue only
                assert len(pulled) <= 3 * 5 + 1
            results.append(result)

        async with client_for(api, loop, concurrency=5) as client:
            await client.deliver(source(), record)
        return results

    results = run_virtual(main)
    assert api.most_in_flight == 5
    assert sorted(int(r.key[1:]) for r in results) == list(range(200))


def test_an_async_source_is_accepted() -> None:
    """``deliver`` takes an async iterator of submissions as well as a plain iterable."""

    async def source() -> AsyncIterator[Submission]:
        for n in range(20):
            await asyncio.sleep(0.01)
            yield sub(n)

    api = Api(answer(201))

    async def main(loop: VirtualTimeLoop) -> list[Result]:
        results: list[Result] = []
        async with client_for(api, loop) as client:
            await client.deliver(source(), results.append)
        return results

    assert len(run_virtual(main)) == 20


def test_an_external_stop_is_orderly_and_every_sent_row_is_reported() -> None:
    """Setting ``stop`` ends intake; in-flight requests finish and are reported; no error."""
    api = Api(answer(201))
    api.latency = lambda: 0.3

    async def main(loop: VirtualTimeLoop) -> tuple[list[Result], int]:
        stop = asyncio.Event()
        results: list[Result] = []

        def record(result: Result) -> None:
            results.append(result)
            if len(results) == 10:
                stop.set()

        async with client_for(api, loop, concurrency=4) as client:
            await client.deliver([sub(n) for n in range(1_000)], record, stop=stop)
            return results, client.stats.sent

    results, sent = run_virtual(main)
    assert 10 <= len(results) <= 10 + 4
    assert sent == len(results) == len(api.requests)


def test_a_stop_during_a_retry_after_pause_ends_at_once_leaving_rows_unreported() -> None:
    """A stop while everyone waits out a long 429 pause returns promptly; nothing more is sent."""
    api = Api(answer(429, headers={"Retry-After": "600"}))

    async def main(loop: VirtualTimeLoop) -> tuple[list[Result], float]:
        stop = asyncio.Event()
        loop.call_later(1.0, stop.set)
        results: list[Result] = []
        async with client_for(api, loop, concurrency=3) as client:
            await client.deliver([sub(n) for n in range(10)], results.append, stop=stop)
        return results, loop.time()

    results, ended = run_virtual(main)
    assert results == []
    assert ended < 2.0
    assert len(api.requests) == 3


def test_cancelling_deliver_from_outside_still_cancels() -> None:
    """A caller's cancel is not mistaken for an orderly stop: ``deliver`` ends cancelled."""
    api = Api(answer(429, headers={"Retry-After": "600"}))

    async def main(loop: VirtualTimeLoop) -> bool:
        async with client_for(api, loop, concurrency=3) as client:
            task = asyncio.ensure_future(client.deliver([sub(n) for n in range(10)], print))
            loop.call_later(1.0, task.cancel)
            with pytest.raises(asyncio.CancelledError):
                await task
            return task.cancelled()

    assert run_virtual(main)


def test_a_stop_set_before_delivery_sends_nothing() -> None:
    """An already-set stop (SIGINT during start-up) takes no row at all."""
    api = Api(answer(201))

    async def main(loop: VirtualTimeLoop) -> list[Result]:
        stop = asyncio.Event()
        stop.set()
        results: list[Result] = []
        async with client_for(api, loop) as client:
            await client.deliver([sub(n) for n in range(10)], results.append, stop=stop)
        return results

    assert run_virtual(main) == []
    assert api.requests == []


def test_an_error_in_on_result_stops_the_run_and_is_raised() -> None:
    """If recording a result fails (disk full…), delivery stops in order and the error surfaces."""
    api = Api(answer(201))

    def explode(result: Result) -> None:
        raise OSError("ledger is read-only")

    async def main(loop: VirtualTimeLoop) -> int:
        async with client_for(api, loop, concurrency=2) as client:
            with pytest.raises(OSError, match="read-only"):
                await client.deliver([sub(n) for n in range(100)], explode)
        return len(api.requests)

    assert run_virtual(main) <= 2


def test_every_request_goes_through_the_shared_limiter() -> None:
    """Retries and lookups take limiter slots too: grants equal requests sent."""
    api = Api(answer(503), answer(201), answer(201))

    async def main(loop: VirtualTimeLoop) -> tuple[RateLimiter, StackOneClient]:
        limiter = RateLimiter(2, 1.0, clock=loop.time)
        async with client_for(api, loop, limiter=limiter) as client:
            await client.deliver([sub(0), sub(1)], lambda _: None)
        return limiter, client

    limiter, client = run_virtual(main)
    assert limiter.acquired == client.stats.sent == len(api.requests) == 3
    assert api.times[2] >= 1.0  # the third request waited for the 2/1s window


# -- users --------------------------------------------------------------------------------------


def test_find_users_filters_by_email_and_follows_the_cursor() -> None:
    """``filter[email]`` is sent, pages are followed via ``next`` until it is null."""
    pages = {
        None: {"data": [{"id": "u1", "email": "a@x.com"}], "next": "c2"},
        "c2": {"data": [{"id": "u2", "email": "a@x.com"}], "next": None},
    }
    api = Api(lambda request: httpx.Response(200, json=pages[request.url.params.get("next")]))

    async def main(loop: VirtualTimeLoop) -> list[dict[str, Any]]:
        async with client_for(api, loop) as client:
            return await client.find_users("acct-1", email="a@x.com")

    users = run_virtual(main)
    assert [user["id"] for user in users] == ["u1", "u2"]
    first = api.requests[0]
    assert first.method == "GET" and first.url.path == "/unified/lms/users"
    assert first.url.params["filter[email]"] == "a@x.com"
    assert first.headers["x-account-id"] == "acct-1"
    assert api.requests[1].url.params["next"] == "c2"


def test_iter_all_users_pages_through_everything_and_waits_out_429() -> None:
    """All pages are yielded in order; a 429 between pages pauses and retries."""
    pages = iter(
        [
            httpx.Response(200, json={"data": [{"id": "u1"}, {"id": "u2"}], "next": "b"}),
            answer(429, headers={"Retry-After": "3"}),
            httpx.Response(200, json={"data": [{"id": "u3"}], "next": None}),
        ]
    )
    api = Api(lambda request: next(pages))

    async def main(loop: VirtualTimeLoop) -> list[str]:
        async with client_for(api, loop) as client:
            return [user["id"] async for user in client.iter_all_users("acct-1", page_size=2)]

    assert run_virtual(main) == ["u1", "u2", "u3"]
    assert api.requests[0].url.params["page_size"] == "2"
    assert api.times[2] - api.times[1] >= 3.0


def test_find_users_needs_exactly_one_filter_and_reports_failures() -> None:
    """Neither or both filters is a ValueError; a 400 is ApiError(http_400); a 401 AuthError."""
    api = Api(answer(400, "bad filter"), answer(401, "who are you"))

    async def main(loop: VirtualTimeLoop) -> None:
        async with client_for(api, loop) as client:
            with pytest.raises(ValueError):
                await client.find_users("acct-1")
            with pytest.raises(ValueError):
                await client.find_users("acct-1", email="a", external_reference="b")
            with pytest.raises(ApiError, match="bad filter") as caught:
                await client.find_users("acct-1", external_reference="ext-1")
            assert (caught.value.code, caught.value.http_status) == ("http_400", 400)
            with pytest.raises(AuthError):
                await client.find_users("acct-1", email="a@x.com")

    run_virtual(main)
    assert api.requests[0].url.params["filter[external_reference]"] == "ext-1"


# -- secrets ------------------------------------------------------------------------------------


def test_the_key_never_appears_in_results_errors_reprs_or_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A server echoing the key or its Basic token, or an error naming it, is always redacted."""
    echo = f"bad key {KEY} / header Basic {TOKEN}"
    api = Api(
        httpx.ConnectError(f"cannot reach with {KEY}"),
        answer(429, headers={"Retry-After": "1"}),
        answer(400, echo),
        answer(500, echo),
        answer(500, echo),
        answer(500, echo),
        answer(401, echo),
    )
    shown: list[str] = []

    async def main(loop: VirtualTimeLoop) -> None:
        async with client_for(api, loop, concurrency=1) as client:
            shown.extend([repr(client), repr(client._http.auth), str(vars(client._http.auth))])
            shown.append(repr(await client.submit(sub(0))))  # ConnectError, 429, then 400
            shown.append(repr(await client.submit(sub(1))))  # 500 x3: retries_exhausted
            with pytest.raises(AuthError) as caught:
                await client.submit(sub(2))
            shown.extend([str(caught.value), repr(caught.value)])

    with caplog.at_level(logging.DEBUG):
        run_virtual(main)
    shown.append(caplog.text)
    assert "[REDACTED]" in shown[3] and "[REDACTED]" in shown[5]
    for text in shown:
        assert KEY not in text
        assert TOKEN not in text


def test_unexpected_transport_errors_abort_without_the_key_or_its_traceback_chain() -> None:
    """A non-retryable httpx error becomes AbortError with a scrubbed text and no chained cause."""
    api = Api(httpx.UnsupportedProtocol(f"bad url with {KEY}"))
    with pytest.raises(AbortError) as caught:
        submit_one(api)
    assert KEY not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_settings_build_the_client_and_a_missing_key_is_a_settings_error() -> None:
    """``from_settings`` uses the settings' rate limit; without STACKONE_API_KEY it refuses."""
    with pytest.raises(SettingsError, match="STACKONE_API_KEY"):
        StackOneClient.from_settings(Settings(api_key=None))
    with pytest.raises(SettingsError):
        StackOneClient(SecretStr(""))

    async def main() -> tuple[int, float, str]:
        settings = Settings(api_key=KEY, rate_limit="300/10s", base_url="http://127.0.0.1:1/")
        async with StackOneClient.from_settings(settings) as client:
            return client.limiter.max_requests, client.limiter.period, client.base_url

    assert asyncio.run(main()) == (300, 10.0, "http://127.0.0.1:1")


# -- integration: the sandbox over real HTTP ----------------------------------------------------


def sandbox_client(
    running: RunningSandbox, *, key: str = SANDBOX_KEY, concurrency: int = 8, rate: str = "500/1s"
) -> StackOneClient:
    """A real client for the sandbox (real clock, no backoff sleeps)."""
    return StackOneClient(
        key,
        base_url=running.base_url,
        limiter=RateLimiter.from_text(rate),
        concurrency=concurrency,
        max_attempts=12,  # 30 % faults: 0.3**12 keeps a give-up out of a 40-row test
        read_timeout=5.0,
        sleep=Sleeps(),
    )


def deliver_all(client: StackOneClient, submissions: list[Submission]) -> list[Result]:
    """Run ``client.deliver`` over ``submissions`` on a real event loop and collect results."""
    results: list[Result] = []

    async def main() -> None:
        async with client:
            await client.deliver(submissions, results.append)

    asyncio.run(main())
    return results


def sandbox_sub(n: int, user: str = "learner-1") -> Submission:
    """A valid submission for the sandbox's default account."""
    return Submission(f"k{n}", SANDBOX_ACCOUNT, user, body(f"C{n}"))


def test_sandbox_delivers_then_reports_duplicates_on_a_rerun(sandbox: RunningSandbox) -> None:
    """Real HTTP: 30 rows are created once; sending them again gives 30 ``http_409`` duplicates."""
    rows = [sandbox_sub(n, user="dept/ann smith") for n in range(30)]
    first = deliver_all(sandbox_client(sandbox), rows)
    assert sorted(r.outcome for r in first) == ["delivered"] * 30
    assert all(r.remote_id for r in first)
    stored = sandbox.completions()
    assert len(stored) == 30 and {row["user_id"] for row in stored} == {"dept/ann smith"}
    again = deliver_all(sandbox_client(sandbox), rows)
    assert {(r.outcome, r.code) for r in again} == {("duplicate", "http_409")}


def test_sandbox_rejections_carry_the_field_in_the_message(sandbox: RunningSandbox) -> None:
    """Real HTTP: a body breaking a rule fails with 422 and the message naming the field."""
    wrong = b'{"learning_object_external_reference": "C", "completed_at": "yesterday"}'
    bad = Submission("bad", SANDBOX_ACCOUNT, "u", wrong)
    (result,) = deliver_all(sandbox_client(sandbox), [bad])
    assert (result.outcome, result.code, result.http_status) == ("failed", "http_422", 422)
    assert result.message is not None and "completed_at" in result.message


def test_sandbox_wrong_key_aborts_with_few_requests(sandbox: RunningSandbox) -> None:
    """Real HTTP: a wrong key raises AuthError after at most ``concurrency`` requests."""
    client = sandbox_client(sandbox, key="not-the-key", concurrency=4)
    with pytest.raises(AuthError, match="401"):
        deliver_all(client, [sandbox_sub(n) for n in range(100)])
    assert len(sandbox.request_log()) <= 4


def test_sandbox_faults_and_dropped_connections_are_retried_to_success(
    make_sandbox: Callable[..., RunningSandbox],
) -> None:
    """Real HTTP: with 30 % of requests answered 500/503/408 or dropped, every row still lands."""
    running = make_sandbox(fault_rate=0.3, faults=("http_500", "http_503", "drop"), seed=5)
    client = sandbox_client(running)
    results = deliver_all(client, [sandbox_sub(n) for n in range(40)])
    assert sorted(r.outcome for r in results) == ["delivered"] * 40
    log = running.request_log()
    assert any(entry["fault"] == "drop" for entry in log)
    assert client.stats.retries == len(log) - 40
    assert len(running.completions()) == 40


def test_sandbox_rate_limit_is_respected_and_429_is_waited_out(
    make_sandbox: Callable[..., RunningSandbox],
) -> None:
    """Real HTTP: a sandbox stricter than the client answers 429; the client pauses and finishes."""
    running = make_sandbox(rate_limit=(3, 0.5))
    client = sandbox_client(running, rate="30/1s", concurrency=4)
    results = deliver_all(client, [sandbox_sub(n) for n in range(6)])
    assert sorted(r.outcome for r in results) == ["delivered"] * 6
    assert client.stats.status_429 >= 1
    log = running.request_log()
    assert max_requests_in_window(log, 0.5, exclude_statuses={429}) <= 3
