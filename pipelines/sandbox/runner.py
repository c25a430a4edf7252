"""Running the sandbox under uvicorn: in a background thread for tests and the demo, or in the
foreground for the ``lms-sync sandbox`` command."""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn

from pipelines.sandbox.app import SandboxApp
from pipelines.sandbox.config import SandboxConfig


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
        """Every API request: time (epoch s), key, method, path, account (``x-account-id``),
        status (0 = dropped), fault."""
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
