"""Run-level errors raised where lms-sync touches the outside world (files, API, locks).

    LmsSyncError                 (transforms.errors) base; ``retryable``, ``exit_code``
    ├── MappingError             (transforms.errors) the mapping file is wrong   terminal, exit 2
    ├── SourceError              a source file cannot be read at all             terminal, exit 2
    ├── SettingsError            a setting the run needs is missing or wrong     terminal, exit 2
    ├── StateVersionError        the ledger was written by a newer lms-sync      terminal, exit 2
    ├── ApiError                 a user lookup was refused or ran out of retries row-level, exit 1
    └── AbortError               the API says stop: 501, unreachable, …          terminal, exit 3
        └── AuthError            the API key or account is refused (401/403)     terminal, exit 3
            └── AccountRefused   one account is refused (403): its rows fail     row-level, exit 1

Row problems (a malformed record, a bad value) are values, never these exceptions.
"""

from __future__ import annotations

from pathlib import Path

from transforms.errors import LmsSyncError

__all__ = [
    "AbortError",
    "AccountRefused",
    "ApiError",
    "AuthError",
    "SettingsError",
    "SourceError",
    "StateVersionError",
]


class SourceError(LmsSyncError):
    """A source cannot be read at all: missing, empty, no header, undecodable, unknown format."""

    retryable = False
    exit_code = 2

    def __init__(self, source: str | Path, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = str(source)


class SettingsError(LmsSyncError):
    """A setting the run needs is missing or unusable, e.g. no ``STACKONE_API_KEY`` (exit 2)."""

    retryable = False
    exit_code = 2


class ApiError(LmsSyncError):
    """A request other than a completion (a user lookup) failed; ``code`` is a §6 row error code."""

    exit_code = 1

    def __init__(
        self, message: str, *, code: str, http_status: int | None = None, retryable: bool = False
    ) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status
        self.retryable = retryable


class AbortError(LmsSyncError):
    """The API says stop the run (501, unreachable): stop sending, rows left pending, exit 3."""

    retryable = False
    exit_code = 3

    def __init__(self, message: str, *, http_status: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status


class AuthError(AbortError):
    """The API key or account was refused (401/403): nothing more can succeed this run (exit 3)."""


class AccountRefused(AuthError):
    """A 403 names one account (``x-account-id``) the key cannot reach: that account's rows fail
    with ``http_403`` and a run with other accounts goes on (exit 1); where nothing catches it,
    it stops the run like any ``AuthError``. ``attempts``: requests this row sent (0: none)."""

    def __init__(
        self, account_id: str, server_message: str, base_url: str, attempts: int = 0
    ) -> None:
        super().__init__(f"HTTP 403 from {base_url}: {server_message}", http_status=403)
        self.account_id = account_id
        self.server_message = server_message
        self.base_url = base_url
        self.attempts = attempts


class StateVersionError(LmsSyncError):
    """A state file's schema is newer than this tool understands: upgrade lms-sync (exit 2)."""

    retryable = False
    exit_code = 2

    def __init__(self, path: str | Path, found: int, known: int) -> None:
        super().__init__(
            f"{path}: schema version {found} is newer than this lms-sync understands "
            f"(version {known}); upgrade lms-sync or use another --ledger"
        )
        self.path = str(path)
        self.found = found
        self.known = known
