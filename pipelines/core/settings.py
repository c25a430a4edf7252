"""Run settings: one typed object built at the edge from environment variables and CLI flags.

StackOne's own variables keep their names (``STACKONE_API_KEY``, ``STACKONE_ACCOUNT_ID``,
``STACKONE_BASE_URL``); everything else reads ``LMS_SYNC_<FIELD>``. Flags passed to
``load_settings`` win over the environment. Defaults and run options live here too; no other
module reads ``os.environ``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_serializer, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pipelines.core.rate_limit import RateLimit, parse_rate_limit
from pipelines.core.state_location import StateLocation

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_LEDGER",
    "DEFAULT_RATE_LIMIT",
    "DEFAULT_RUNS_DIR",
    "PREFECT_DEFAULTS",
    "RateLimit",
    "RunOptions",
    "Settings",
    "environment",
    "is_loopback_host",
    "load_settings",
    "prefect_api_configured",
    "scoped_environment",
    "storage_emulator_host",
    "use_prefect_defaults",
]

DEFAULT_BASE_URL = "https://api.stackone.com"
DEFAULT_RATE_LIMIT = "950/60s"
DEFAULT_LEDGER = Path("data/state/ledger.sqlite")
DEFAULT_RUNS_DIR = Path("data/runs")
DEFAULT_STATE = StateLocation.sqlite(DEFAULT_LEDGER)
# Prefect's temporary server: quiet, no UI, and enough time to start on a busy 2-core machine.
ALLOCATOR_DEFAULTS = {"MIMALLOC_PURGE_DELAY": "-1"}  # see keep_freed_memory
PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_UI_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    # The terminal shows Prefect's warnings only (the CLI prints its own summary); a run's log
    # lines still reach the server at INFO, for the flow run's Logs tab.
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
}
_ENV_NAMES = {
    "api_key": "STACKONE_API_KEY",
    "account_id": "STACKONE_ACCOUNT_ID",
    "base_url": "STACKONE_BASE_URL",
}


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1), where http is safe."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    """Everything a run needs that is not in the mapping file; secrets are ``SecretStr``."""

    model_config = SettingsConfigDict(
        env_prefix="LMS_SYNC_",
        extra="forbid",
        frozen=True,
        hide_input_in_errors=True,
    )

    api_key: SecretStr | None = Field(default=None, validation_alias=_ENV_NAMES["api_key"])
    account_id: str | None = Field(default=None, validation_alias=_ENV_NAMES["account_id"])
    base_url: str = Field(default=DEFAULT_BASE_URL, validation_alias=_ENV_NAMES["base_url"])
    rate_limit: Annotated[RateLimit, NoDecode] = Field(default=RateLimit(950, 60.0))
    concurrency: int = Field(default=32, ge=1, le=1024)
    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=6, ge=1, le=100)
    backoff_base: float = Field(default=0.5, ge=0)
    backoff_max: float = Field(default=30.0, ge=0)
    state_url: SecretStr | None = None  # LMS_SYNC_STATE_URL: sqlite:///path or postgresql://…
    budget_dir: Path | None = None  # LMS_SYNC_BUDGET_DIR: rate budget files (no PostgreSQL state)

    def __init__(self, **values: Any) -> None:
        # Field names work as keywords too, without making LMS_SYNC_API_KEY & co. env sources.
        for name, alias in _ENV_NAMES.items():
            if name in values:
                values[alias] = values.pop(name)
        super().__init__(**values)

    @field_validator("api_key", mode="before")
    @classmethod
    def _blank_key_is_none(cls, value: Any) -> Any:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(text, str):
            text = text.strip()
            return SecretStr(text) if text else None
        return value

    @field_validator("account_id", mode="before")
    @classmethod
    def _blank_account_is_none(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.strip() or None
        return value

    @field_validator("state_url", mode="before")
    @classmethod
    def _check_state_url(cls, value: Any) -> Any:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(text, str):
            if not text.strip():
                return None
            StateLocation.parse(text)  # ValueError names the problem, never the password
            return SecretStr(text.strip())
        return value

    @field_validator("rate_limit", mode="before")
    @classmethod
    def _parse_rate_limit(cls, value: Any) -> Any:
        if isinstance(value, str):
            return RateLimit(*parse_rate_limit(value))
        return value

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("base URL must be an absolute https:// URL")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError("base URL must not carry credentials, a query or a fragment")
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            raise ValueError(
                "base URL must use https (plain http only for localhost/127.0.0.0/8/::1)"
            )
        return value

    @field_serializer("rate_limit")
    def _rate_limit_text(self, value: RateLimit) -> str:
        return str(value)

    @model_validator(mode="after")
    def _check_backoff(self) -> Settings:
        if self.backoff_max < self.backoff_base:
            raise ValueError("backoff_max must be at least backoff_base")
        return self

    @property
    def budget_folder(self) -> Path:
        """Where the rate budget file of each API key is kept when the state is not in
        PostgreSQL: shared by every process of the machine's user (``LMS_SYNC_BUDGET_DIR``)."""
        if self.budget_dir is not None:
            return self.budget_dir
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(cache) / "lms-sync" / "rate-budgets"

    @property
    def target(self) -> str:
        """The base URL, which names the target in reports and keys the ledger."""
        return self.base_url


def load_settings(**flags: Any) -> Settings:
    """Build settings from the environment with CLI flags on top; a flag left at None is unset."""
    return Settings(**{name: value for name, value in flags.items() if value is not None})


@dataclass(frozen=True)
class RunOptions:
    """How to run a plan (everything but the plan and the settings)."""

    out: Path | None = None
    dry_run: bool = False
    state: StateLocation = DEFAULT_STATE
    max_invalid_pct: float | None = None
    check_remote: bool = False
    resend_in_doubt: bool = False  # send keys in doubt whose listing the API cannot answer
    remote_out: str | None = None  # the run folder's object-store URL (``out`` stages it)


def environment() -> dict[str, str]:
    """A copy of the process environment (``${VAR}`` in mapping files expands from it)."""
    return dict(os.environ)


def prefect_api_configured() -> bool:
    """True when a Prefect server or Cloud workspace is configured (``PREFECT_API_URL``)."""
    return bool(os.environ.get("PREFECT_API_URL"))


def storage_emulator_host() -> str | None:
    """A GCS emulator for ``gs://`` URLs (``STORAGE_EMULATOR_HOST``, as Google's clients read it)."""
    return os.environ.get("STORAGE_EMULATOR_HOST", "").strip() or None


def keep_freed_memory() -> None:
    """Before pyarrow loads: its allocator (mimalloc) keeps freed pages for the next chunk instead
    of handing them back to the OS within milliseconds, which made every chunk fault the same
    memory in again (a third of a dry run's system time). A value the user set wins."""
    for name, value in ALLOCATOR_DEFAULTS.items():
        os.environ.setdefault(name, value)


def use_prefect_defaults() -> None:
    """Quiet, fast defaults for Prefect's temporary server (set before Prefect is imported)."""
    for name, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(name, value)


@contextlib.contextmanager
def scoped_environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block (the demo points every run at its sandbox)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
