"""The sandbox imitates StackOne's LMS API over real HTTP: auth, validation, 409, 404, paging,
rate limit, faults and latency."""

from __future__ import annotations

import asyncio
import random
import time
from base64 import b64encode
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from pipelines.sandbox import ACCOUNT_REFUSED, RunningSandbox, Sandbox, SandboxConfig, parse_latency
from pipelines.sandbox import latency_sampler as _latency_sampler
from tests.conftest import (
    SANDBOX_ACCOUNT,
    TENANT_ACCOUNTS,
    max_requests_in_window,
    sandbox_client,
    tls_context,
)
from transforms.dto import CreateResultResponse, ErrorResponse

MakeSandbox = Callable[..., RunningSandbox]
USERS = [
    {"id": f"u{n}", "email": f"User{n}@Example.com", "external_reference": f"ref-{n}"}
    for n in range(1, 6)
] + [{"id": "dept/7", "email": "slash@example.com", "external_reference": "ref-7"}]
BODY: dict[str, Any] = {
    "learning_object_external_reference": "COURSE-1",
    "completed_at": "2024-05-01T13:45:00.000Z",
    "time_spent": "PT1H30M",
    "result": {"value": "Pass", "source_value": "Passed"},
    "score": {"percentage": 87.5, "raw_value": "87,5"},
}


@pytest.fixture(scope="module")
def module_sandbox() -> Iterator[RunningSandbox]:
    """One default sandbox shared by this module's many small cases (a start/stop costs ~0.2 s)."""
    with Sandbox() as running:
        yield running


@pytest.fixture
def shared(module_sandbox: RunningSandbox) -> RunningSandbox:
    """The module's sandbox, reset so each test starts with no completions, log or windows."""
    module_sandbox.reset()
    return module_sandbox


def completions_path(user_id: str) -> str:
    """The completions URL of a user, the id percent-encoded as one segment."""
    return f"/unified/lms/users/{quote(user_id, safe='')}/completions"


def test_create_answers_201_stores_and_reads_back(sandbox: RunningSandbox) -> None:
    """A valid body is stored and answered with StackOne's 201 body; both GETs return it."""
    with sandbox_client(sandbox) as client:
        response = client.post(completions_path("u1"), json=BODY)
        listed = client.get(completions_path("u1")).json()
    assert response.status_code == 201
    created = CreateResultResponse.model_validate(response.json())
    assert (created.status_code, created.message) == (201, "Record created successfully.")
    stored = sandbox.completions()
    assert [(row["id"], row["user_id"], row["body"]) for row in stored] == [
        (created.data.id, "u1", BODY)
    ]
    assert stored[0]["remote_id"] == created.data.remote_id
    assert listed["next"] is None
    assert [row["id"] for row in listed["data"]] == [created.data.id]
    assert listed["data"][0]["time_spent"] == "PT1H30M"


def test_exact_repeat_is_409_but_any_difference_is_new(shared: RunningSandbox) -> None:
    """Only the same user, account and body conflict; the 409 names the stored id."""
    with sandbox_client(shared) as client:
        first = client.post(completions_path("u1"), json=BODY)
        repeat = client.post(completions_path("u1"), json=BODY)
        other_user = client.post(completions_path("u2"), json=BODY)
        other_body = client.post(completions_path("u1"), json={**BODY, "time_spent": "PT2H"})
    assert repeat.status_code == 409
    assert repeat.json()["data"]["id"] == first.json()["data"]["id"]
    assert ErrorResponse.model_validate(repeat.json()).message == "Record already exists"
    assert (other_user.status_code, other_body.status_code) == (201, 201)
    assert len(shared.completions()) == 3


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Basic " + b64encode(b"wrong-key:").decode(),
        "Basic " + b64encode(b"sandbox-key:pw").decode(),
        "Bearer sandbox-key",
        "Basic not-base64!",
    ],
)
def test_bad_credentials_are_401(shared: RunningSandbox, authorization: str | None) -> None:
    """No Basic auth, an unknown key, a non-empty password or another scheme are 401."""
    headers = {"authorization": authorization} if authorization else {}
    with sandbox_client(shared, key=None) as client:
        response = client.post(completions_path("u1"), json=BODY, headers=headers)
    assert response.status_code == 401
    assert ErrorResponse.model_validate(response.json()).status_code == 401
    assert shared.completions() == []
    assert [(e["status"], e["key"]) for e in shared.request_log()] == [(401, None)]


def test_account_header_missing_is_400_and_unknown_is_403(shared: RunningSandbox) -> None:
    """A missing x-account-id is a bad request; an account the key cannot reach is forbidden."""
    with sandbox_client(shared, account=None) as client:
        missing = client.post(completions_path("u1"), json=BODY)
    with sandbox_client(shared, account="someone-else") as client:
        unknown = client.post(completions_path("u1"), json=BODY)
    assert (missing.status_code, missing.json()["message"]) == (
        400,
        "x-account-id header is required",
    )
    assert unknown.status_code == 403
    assert unknown.json()["message"] == ACCOUNT_REFUSED  # StackOne's words, no account named
    assert [entry["account"] for entry in shared.request_log()] == [None, "someone-else"]


def test_a_key_reaches_each_of_its_accounts_and_no_other(tenants_sandbox: RunningSandbox) -> None:
    """With several accounts, each stores its own completions; any other account is 403."""
    statuses = {}
    for account in (*TENANT_ACCOUNTS, "tenant-x"):
        with sandbox_client(tenants_sandbox, account=account) as client:
            statuses[account] = client.post(completions_path("u1"), json=BODY).status_code
    assert statuses == {**dict.fromkeys(TENANT_ACCOUNTS, 201), "tenant-x": 403}
    assert sorted(c["account_id"] for c in tenants_sandbox.completions()) == list(TENANT_ACCOUNTS)
    with pytest.raises(ValueError, match="account_ids"):
        SandboxConfig(account_ids=set())


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"completed_at": "2024-05-01T13:45:00.000Z"}, "learning_object_external_reference"),
        ({**BODY, "learning_object_id": None}, "learning_object_id"),
        ({**BODY, "course": "x"}, "course"),
        ({**BODY, "learning_object_external_reference": 17}, "learning_object_external_reference"),
        ({**BODY, "score": {"percentage": "87", "raw_value": "87"}}, "score.percentage"),
        ({**BODY, "passthrough": ["a"]}, "passthrough"),
        ([BODY], "body"),
    ],
)
def test_malformed_body_is_400_naming_the_field(
    shared: RunningSandbox, body: object, field: str
) -> None:
    """Missing, null, unknown or wrongly typed fields are 400; the message starts with the field."""
    with sandbox_client(shared) as client:
        response = client.post(completions_path("u1"), json=body)
    error = ErrorResponse.model_validate(response.json())
    assert response.status_code == error.status_code == 400
    assert error.message.startswith(f"{field}: ")
    assert error.data is not None and error.data["errors"][0]["field"] == field


def test_unparseable_json_is_400(shared: RunningSandbox) -> None:
    """A body that is not JSON at all is a 400 naming the body."""
    with sandbox_client(shared) as client:
        response = client.post(completions_path("u1"), content=b"{not json")
    assert response.status_code == 400
    assert response.json()["message"].startswith("body: Invalid JSON")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"completed_at": "2024-05-01T13:45:00Z"}, "completed_at"),
        ({"time_spent": "PT90M"}, "time_spent"),
        ({"result": {"value": "Passed", "source_value": "Passed"}}, "result.value"),
        ({"score": {"percentage": 100.5, "raw_value": "100.5"}}, "score.percentage"),
        ({"learning_object_external_reference": ""}, "learning_object_external_reference"),
    ],
)
def test_rule_breaking_value_is_422_naming_the_field(
    shared: RunningSandbox, change: dict[str, Any], field: str
) -> None:
    """Well-typed values that break a §3/§5 rule are 422 and the message names the field."""
    with sandbox_client(shared) as client:
        response = client.post(completions_path("u1"), json={**BODY, **change})
    assert response.status_code == 422
    assert response.json()["message"].startswith(f"{field}: ")


def test_first_error_follows_api_field_order(shared: RunningSandbox) -> None:
    """With several bad fields the message names the earliest in the §3 table order."""
    body = {**BODY, "score": {"percentage": 150, "raw_value": "150"}, "completed_at": "yesterday"}
    with sandbox_client(shared) as client:
        response = client.post(completions_path("u1"), json=body)
    assert response.json()["message"].startswith("completed_at: ")
    assert [e["field"] for e in response.json()["data"]["errors"]] == [
        "completed_at",
        "score.percentage",
    ]


def test_unknown_user_is_404_only_when_users_are_loaded(make_sandbox: MakeSandbox) -> None:
    """With a user list (even empty) an unknown id is 404; an encoded slash stays in the id."""
    with_users, without_users, empty = (
        make_sandbox(users=USERS),
        make_sandbox(),
        make_sandbox(users=[]),
    )
    with sandbox_client(with_users) as client:
        unknown = client.post(completions_path("nobody"), json=BODY)
        slashed = client.post(completions_path("dept/7"), json=BODY)
    with sandbox_client(without_users) as client:
        anyone = client.post(completions_path("nobody"), json=BODY)
    with sandbox_client(empty) as client:
        no_one = client.post(completions_path("u1"), json=BODY)
    assert unknown.status_code == 404
    assert "nobody" in unknown.json()["message"]
    assert slashed.status_code == 201
    assert [row["user_id"] for row in with_users.completions()] == ["dept/7"]
    assert with_users.request_log()[-1]["path"] == "/unified/lms/users/dept%2F7/completions"
    assert (anyone.status_code, no_one.status_code) == (201, 404)


def test_user_lookup_by_email_and_external_reference(make_sandbox: MakeSandbox) -> None:
    """filter[email] matches case-insensitively, filter[external_reference] exactly."""
    running = make_sandbox(users=USERS)
    with sandbox_client(running) as client:
        by_email = client.get("/unified/lms/users", params={"filter[email]": "user3@example.COM"})
        by_ref = client.get("/unified/lms/users", params={"filter[external_reference]": "ref-4"})
        no_match = client.get("/unified/lms/users", params={"filter[external_reference]": "REF-4"})
    assert by_email.json() == {"data": [USERS[2]], "next": None}
    assert by_ref.json() == {"data": [USERS[3]], "next": None}
    assert no_match.json() == {"data": [], "next": None}


def test_user_list_pages_with_next_cursor(make_sandbox: MakeSandbox) -> None:
    """Following ``next`` with page_size=4 visits every user once, then ``next`` is null."""
    running = make_sandbox(users=USERS)
    seen: list[dict[str, str]] = []
    pages = 0
    with sandbox_client(running) as client:
        params: dict[str, str] = {"page_size": "4"}
        while True:
            page = client.get("/unified/lms/users", params=params).json()
            seen, pages = seen + page["data"], pages + 1
            if page["next"] is None:
                break
            params = {"page_size": "4", "next": page["next"]}
        bad = client.get("/unified/lms/users", params={"page_size": "0"})
    assert (seen, pages) == (USERS, 2)
    assert bad.status_code == 400


def test_rate_limit_answers_429_with_retry_after(make_sandbox: MakeSandbox) -> None:
    """Past 5 requests/1 s per key: 429 + Retry-After; 429s take no slot; the log shows it."""
    running = make_sandbox(rate_limit=(5, 1.0))
    with sandbox_client(running) as client:
        statuses = [client.get("/unified/lms/users").status_code for _ in range(5)]
        limited = [client.post(completions_path("u1"), json=BODY) for _ in range(3)]
        time.sleep(int(limited[-1].headers["retry-after"]))
        after = client.get("/unified/lms/users")
    assert statuses == [200] * 5
    assert [r.status_code for r in limited] == [429] * 3
    assert all(r.headers["retry-after"] == "1" for r in limited)
    assert ErrorResponse.model_validate(limited[0].json()).status_code == 429
    assert after.status_code == 200
    log = running.request_log()
    assert [entry["status"] for entry in log] == [200] * 5 + [429] * 3 + [200]
    assert {entry["key"] for entry in log} == {"sandbox-key"}
    assert max_requests_in_window(log, 1.0, exclude_statuses={429}) == 5
    assert max_requests_in_window(log, 1.0) == 8


def test_rate_limit_is_per_api_key(make_sandbox: MakeSandbox) -> None:
    """Each key has its own window: a second key is not slowed by the first one's traffic."""
    running = make_sandbox(rate_limit=(2, 5.0), api_keys={"k1", "k2"})
    with sandbox_client(running, key="k1") as first, sandbox_client(running, key="k2") as second:
        one = [first.get("/unified/lms/users").status_code for _ in range(3)]
        two = [second.get("/unified/lms/users").status_code for _ in range(2)]
    assert (one, two) == ([200, 200, 429], [200, 200])


@pytest.mark.parametrize(
    ("fault", "status"),
    [("http_500", 500), ("http_502", 502), ("http_503", 503), ("http_408", 408)],
)
def test_injected_http_faults(make_sandbox: MakeSandbox, fault: str, status: int) -> None:
    """At fault_rate=1 each HTTP fault answers its status (408 with Retry-After); nothing stored."""
    running = make_sandbox(fault_rate=1.0, faults=(fault,))
    with sandbox_client(running) as client:
        response = client.post(completions_path("u1"), json=BODY)
    assert response.status_code == status
    assert ErrorResponse.model_validate(response.json()).status_code == status
    assert response.headers.get("retry-after") == ("1" if status == 408 else None)
    assert running.completions() == []
    assert [(e["status"], e["fault"]) for e in running.request_log()] == [(status, fault)]


def test_injected_dropped_connection(make_sandbox: MakeSandbox) -> None:
    """A dropped connection closes the socket with no response at all; the log says status 0."""
    running = make_sandbox(fault_rate=1.0, faults=("drop",))
    with sandbox_client(running) as client, pytest.raises(httpx.RemoteProtocolError):
        client.post(completions_path("u1"), json=BODY)
    assert running.completions() == []
    assert [(e["status"], e["fault"]) for e in running.request_log()] == [(0, "drop")]


def test_injected_slow_response_outlasts_client_timeout(make_sandbox: MakeSandbox) -> None:
    """A slow fault answers after ``slow_seconds`` (client times out), then still stores the row."""
    running = make_sandbox(fault_rate=1.0, faults=("slow",), slow_seconds=0.6)
    with sandbox_client(running, timeout=0.2) as client, pytest.raises(httpx.ReadTimeout):
        client.post(completions_path("u1"), json=BODY)
    deadline = time.monotonic() + 3
    while not running.completions() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [row["body"] for row in running.completions()] == [BODY]


def test_stop_cuts_a_pending_slow_response_short() -> None:
    """Stopping while a 30 s slow fault is pending returns promptly instead of waiting it out."""
    with Sandbox(SandboxConfig(fault_rate=1.0, faults=("slow",))) as running:
        with sandbox_client(running, timeout=0.2) as client, pytest.raises(httpx.ReadTimeout):
            client.get("/unified/lms/users")
        started = time.monotonic()
    assert time.monotonic() - started < 2


def test_faults_are_reproducible_with_a_seed(make_sandbox: MakeSandbox) -> None:
    """The same seed draws the same faults in the same order; fault_rate 0.5 gives a mix."""
    runs = []
    for _ in range(2):
        running = make_sandbox(fault_rate=0.5, faults=("http_500", "http_503"), seed=7)
        with sandbox_client(running) as client:
            runs.append([client.get("/unified/lms/users").status_code for _ in range(20)])
    assert runs[0] == runs[1]
    assert {200, 500, 503} <= set(runs[0])


def test_latency_is_applied(make_sandbox: MakeSandbox) -> None:
    """With median = p99 = 150 ms every answer takes at least 150 ms."""
    running = make_sandbox(latency=(150.0, 150.0))
    with sandbox_client(running) as client:
        for _ in range(3):
            started = time.perf_counter()
            assert client.get("/unified/lms/users").status_code == 200
            assert time.perf_counter() - started >= 0.15


def test_latency_is_awaited_without_blocking_other_requests(make_sandbox: MakeSandbox) -> None:
    """60 concurrent creates delayed 200 ms each overlap: far under the 12 s of a blocked loop."""
    running = make_sandbox(latency=(200.0, 200.0))

    async def send_all() -> list[int]:
        async with httpx.AsyncClient(
            verify=tls_context(),
            base_url=running.base_url,
            auth=("sandbox-key", ""),
            headers={"x-account-id": SANDBOX_ACCOUNT},
            limits=httpx.Limits(max_connections=30),
            timeout=10,
        ) as client:
            replies = await asyncio.gather(
                *(
                    client.post(
                        completions_path("u1"), json={**BODY, "learning_object_id": f"LO-{n}"}
                    )
                    for n in range(60)
                )
            )
        return [reply.status_code for reply in replies]

    started = time.perf_counter()
    statuses = asyncio.run(send_all())
    elapsed = time.perf_counter() - started
    assert statuses == [201] * 60
    assert len(running.completions()) == 60
    assert elapsed < 4.0, f"60 delayed requests took {elapsed:.2f} s"


def test_reset_forgets_completions_log_and_windows(make_sandbox: MakeSandbox) -> None:
    """POST /sandbox/reset empties the store, the request log and the rate-limit windows."""
    running = make_sandbox(rate_limit=(1, 60.0))
    with sandbox_client(running) as client:
        assert client.post(completions_path("u1"), json=BODY).status_code == 201
        assert client.post(completions_path("u1"), json=BODY).status_code == 429
        running.reset()
        assert (running.completions(), running.request_log()) == ([], [])
        assert client.post(completions_path("u1"), json=BODY).status_code == 201


def test_parse_latency() -> None:
    """``median,p99`` in ms; one number means a fixed delay; p99 below median is refused."""
    assert parse_latency("300,3000") == (300.0, 3000.0)
    assert parse_latency("20") == (20.0, 20.0)
    for bad in ("3000,300", "a,b", "1,2,3", "-1,5"):
        with pytest.raises(ValueError, match="latency"):
            parse_latency(bad)


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"fault_rate": 1.5}, "fault_rate"),
        ({"faults": ("http_418",)}, "faults"),
        ({"rate_limit": (0, 60.0)}, "rate_limit"),
        ({"latency": (300.0, 30.0)}, "latency"),
        ({"users": [{"email": "a@b"}]}, "user"),
        ({"page_size": 0}, "page_size"),
    ],
)
def test_config_rejects_impossible_settings(config: dict[str, Any], named: str) -> None:
    """A setting that cannot work fails when the config is built, naming the setting."""
    with pytest.raises(ValueError, match=named):
        SandboxConfig(**config)


def test_latency_sampler_fits_median_and_p99() -> None:
    """Delays are log-normal with the configured median and 99th percentile (300/3000 ms)."""
    sample = _latency_sampler(300.0, 3000.0, random.Random(3))
    delays = sorted(sample() for _ in range(5000))
    assert 0.27 < delays[2500] < 0.33
    assert 2.4 < delays[4950] < 3.7
    assert _latency_sampler(0.0, 0.0, random.Random(3))() == 0.0
