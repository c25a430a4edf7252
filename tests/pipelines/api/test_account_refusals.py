"""A 403 refuses one account: nothing more is sent to it, the other accounts go on (issue 14).

Unit tests on a scripted API (``httpx.MockTransport``) in virtual time; the end-to-end cases over
real HTTP are in ``tests/pipelines/run/test_many_accounts.py``.
"""

from __future__ import annotations

import random

import httpx
import pytest

from pipelines.api.completions import Result
from pipelines.core.errors import AccountRefused, AuthError
from tests.pipelines.api.test_client import Api, answer, client_for, sub
from tests.pipelines.api.test_ratelimit import VirtualTimeLoop, run_virtual

REFUSED = "acct-refused"
MESSAGE = "Account not found or not accessible with this API key"


def by_account(request: httpx.Request) -> httpx.Response:
    """403 for ``REFUSED``, 201 for every other account."""
    if request.headers["x-account-id"] == REFUSED:
        return answer(403, MESSAGE)
    return answer(201)


def deliver_three_accounts(
    isolate: bool, concurrency: int = 8
) -> tuple[Api, list[Result], Exception | None]:
    """600 rows over three accounts by turns, one of them refused; results and any error."""
    api = Api(by_account)
    rng = random.Random(5)
    api.latency = lambda: rng.uniform(0.05, 0.4)
    accounts = ("acct-a", REFUSED, "acct-c")
    rows = [sub(n, account=accounts[n % 3]) for n in range(600)]

    async def main(loop: VirtualTimeLoop) -> tuple[list[Result], Exception | None]:
        results: list[Result] = []
        async with client_for(api, loop, concurrency=concurrency) as client:
            try:
                await client.deliver(rows, results.append, isolate_accounts=isolate)
            except AuthError as exc:
                return results, exc
            assert client.refused.messages == {REFUSED: MESSAGE}
        return results, None

    results, error = run_virtual(main)
    return api, results, error


def test_a_refused_account_fails_its_rows_unsent_while_the_others_are_delivered() -> None:
    """After the first 403 at most ``concurrency`` requests of that account were sent (those in
    flight); each of its 200 rows is failed http_403 with the server's message, the rest sent
    ones with attempts 1, the unsent ones with 0; every other row is delivered."""
    api, results, error = deliver_three_accounts(isolate=True)
    assert error is None
    assert len(results) == 600
    refused = [r for r in results if int(r.key[1:]) % 3 == 1]
    assert {(r.outcome, r.code, r.http_status, r.message) for r in refused} == {
        ("failed", "http_403", 403, MESSAGE)
    }
    sent_to_refused = [q for q in api.requests if q.headers["x-account-id"] == REFUSED]
    assert 1 <= len(sent_to_refused) <= 8
    assert sum(r.attempts for r in refused) == len(sent_to_refused)
    others = [r for r in results if int(r.key[1:]) % 3 != 1]
    assert len(others) == 400 and {r.outcome for r in others} == {"delivered"}


def test_without_isolation_a_403_still_aborts_the_run() -> None:
    """Other callers of ``deliver`` keep the old contract: a 403 is an ``AuthError`` that stops
    the run (requests in flight finish) and is re-raised."""
    api, results, error = deliver_three_accounts(isolate=False)
    assert isinstance(error, AccountRefused) and error.account_id == REFUSED
    assert error.exit_code == 3 and MESSAGE in str(error)
    assert len(api.requests) < 60  # stopped early, not 600
    assert all(r.outcome == "delivered" for r in results)


def test_a_401_names_no_account_and_aborts_even_with_isolation() -> None:
    """A refused key is not an account's problem: ``deliver`` re-raises the ``AuthError``."""
    api = Api(answer(401, "bad key"))

    async def main(loop: VirtualTimeLoop) -> None:
        async with client_for(api, loop) as client:
            with pytest.raises(AuthError, match="401") as caught:
                await client.deliver([sub(n) for n in range(50)], lambda _: None,
                                     isolate_accounts=True)  # fmt: skip
            assert not isinstance(caught.value, AccountRefused)
            assert client.refused.messages == {}

    run_virtual(main)
    assert len(api.requests) <= 4
