"""Shared fixtures: a real sandbox server on a free 127.0.0.1 port, and helpers to talk to it."""

from __future__ import annotations

import functools
import os
import ssl
import tempfile
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any

import httpx
import pytest

from pipelines.sandbox import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_API_KEY,
    RunningSandbox,
    SandboxConfig,
    start_sandbox,
)

SANDBOX_KEY = DEFAULT_API_KEY
SANDBOX_ACCOUNT = DEFAULT_ACCOUNT_ID
# The accounts the key reaches in the session's many-accounts sandbox (``tenants_sandbox``).
TENANT_ACCOUNTS = ("tenant-a", "tenant-b", "tenant-c")
TENANTS_RATE_LIMIT = (60, 1.0)  # low enough that a limiter per account would break it


def sandbox_client(
    running: RunningSandbox,
    *,
    key: str | None = SANDBOX_KEY,
    account: str | None = SANDBOX_ACCOUNT,
    timeout: float = 5.0,
) -> httpx.Client:
    """An httpx client for ``running`` with Basic auth (key, no password) and ``x-account-id``."""
    headers = {"x-account-id": account} if account is not None else {}
    auth = (key, "") if key is not None else None
    return httpx.Client(
        base_url=running.base_url, auth=auth, headers=headers, timeout=timeout, verify=tls_context()
    )


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS context for every test client: httpx otherwise loads CA certificates per client."""
    return ssl.create_default_context()


def max_requests_in_window(
    log: Sequence[Mapping[str, Any]], seconds: float, exclude_statuses: Collection[int] = ()
) -> int:
    """Most logged requests that arrived within any ``seconds``-long window (a rate-limit check)."""
    times = sorted(entry["time"] for entry in log if entry["status"] not in exclude_statuses)
    most, first = 0, 0
    for last, arrived in enumerate(times):
        while arrived - times[first] >= seconds:
            first += 1
        most = max(most, last - first + 1)
    return most


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., RunningSandbox]]:
    """Factory: ``make_sandbox(**SandboxConfig fields)`` starts a sandbox, stopped at teardown."""
    started: list[RunningSandbox] = []

    def make(**config: Any) -> RunningSandbox:
        running = start_sandbox(SandboxConfig(**config))
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()


@pytest.fixture
def sandbox(make_sandbox: Callable[..., RunningSandbox]) -> RunningSandbox:
    """A sandbox with default settings (key ``sandbox-key``, account ``sandbox-account``)."""
    return make_sandbox()


@pytest.fixture(scope="session")
def tenants_sandbox_session() -> Iterator[RunningSandbox]:
    """One sandbox for the session whose key reaches ``TENANT_ACCOUNTS`` only (others: 403),
    rate limited to ``TENANTS_RATE_LIMIT`` per key; use ``tenants_sandbox`` (reset per test)."""
    running = start_sandbox(
        SandboxConfig(account_ids=set(TENANT_ACCOUNTS), rate_limit=TENANTS_RATE_LIMIT)
    )
    yield running
    running.stop()


@pytest.fixture
def tenants_sandbox(tenants_sandbox_session: RunningSandbox) -> RunningSandbox:
    """The session's many-accounts sandbox with no completions, request log or rate windows."""
    tenants_sandbox_session.reset()
    return tenants_sandbox_session


from tests.state_stores import postgres_url, state_store  # noqa: E402, F401  (fixtures)

# Rate budget files of the test runs (one per API key and target) in a folder of their own.
os.environ.setdefault("LMS_SYNC_BUDGET_DIR", tempfile.mkdtemp(prefix="lms-sync-budgets-"))
from tests.gcs_server import gcs, gcs_endpoint  # noqa: E402, F401  (fixtures)
from tests.s3_server import s3, s3_endpoint  # noqa: E402, F401  (fixtures)
