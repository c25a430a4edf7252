"""The sandbox: a local imitation of StackOne's API for tests and the demo/sandbox commands only."""

from pipelines.sandbox.app import SandboxApp
from pipelines.sandbox.behaviours import latency_sampler
from pipelines.sandbox.config import (
    ACCOUNT_REFUSED,
    DEFAULT_ACCOUNT_ID,
    DEFAULT_API_KEY,
    FAULT_KINDS,
    MAX_PAGE_SIZE,
    SandboxConfig,
    parse_latency,
)
from pipelines.sandbox.runner import RunningSandbox, Sandbox, serve_forever, start_sandbox

__all__ = [
    "ACCOUNT_REFUSED",
    "DEFAULT_ACCOUNT_ID",
    "DEFAULT_API_KEY",
    "FAULT_KINDS",
    "MAX_PAGE_SIZE",
    "RunningSandbox",
    "Sandbox",
    "SandboxApp",
    "SandboxConfig",
    "latency_sampler",
    "parse_latency",
    "serve_forever",
    "start_sandbox",
]
