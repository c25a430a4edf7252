"""Fixtures of the Prefect tests: a temporary Prefect server per test module, and the environment
a flow reads its settings from pointing at a real sandbox.

The server is module-scoped, not session-scoped: its threads use `random`, which Hypothesis forbids
while it generates data in other modules (``prefect_test_harness``, ~11 s to start).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from pipelines.sandbox import RunningSandbox
from tests.conftest import SANDBOX_ACCOUNT, SANDBOX_KEY


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A temporary Prefect server (own PREFECT_HOME, no analytics) for every test of the module."""
    home = tmp_path_factory.mktemp("prefect-home")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PREFECT_HOME", str(home))
        env.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        env.setenv("PREFECT_SERVER_UI_ENABLED", "false")
        env.setenv("PREFECT_LOGGING_LEVEL", "WARNING")
        env.delenv("PREFECT_API_URL", raising=False)
        from prefect.filesystems import LocalFileSystem
        from prefect.settings import (
            PREFECT_HOME,
            PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK,
            PREFECT_SERVER_ANALYTICS_ENABLED,
            temporary_settings,
        )
        from prefect.testing.utilities import prefect_test_harness

        updates = {PREFECT_HOME: str(home), PREFECT_SERVER_ANALYTICS_ENABLED: False}
        with temporary_settings(updates=updates), prefect_test_harness(server_startup_timeout=90):
            # Without a configured result store, Prefect 3.8 asks the server for its default
            # with a client it never closes (a socket left to the GC each flow run: with
            # warnings as errors, a failure). A named block is read once and cached.
            LocalFileSystem(basepath=str(home / "results")).save("lms-sync-tests")
            store = {PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK: "local-file-system/lms-sync-tests"}
            with temporary_settings(updates=store):
                yield


@pytest.fixture
def deliver_env(
    prefect_server: None,
    make_sandbox: Callable[..., RunningSandbox],
    monkeypatch: pytest.MonkeyPatch,
) -> RunningSandbox:
    """A sandbox, and the environment a flow reads its settings from pointing at it."""
    sandbox = make_sandbox(rate_limit=(100_000, 1.0))
    monkeypatch.setenv("STACKONE_API_KEY", SANDBOX_KEY)
    monkeypatch.setenv("STACKONE_ACCOUNT_ID", SANDBOX_ACCOUNT)
    monkeypatch.setenv("STACKONE_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("LMS_SYNC_RATE_LIMIT", "100000/1s")
    return sandbox
