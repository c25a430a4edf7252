"""Where the state lives: an SQLite file (the embedded default) or a PostgreSQL database, named by
a URL (``sqlite:///path``, ``postgresql://user:password@host/db``) whose password is a secret."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import SecretStr

from pipelines.core.errors import SettingsError

__all__ = ["StateLocation", "redact_url", "resolve_state"]

_POSTGRES_SCHEMES = ("postgresql", "postgres")


def redact_url(url: str) -> str:
    """The URL with its password (and any query, which may hold one) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None and not parts.query:
        return url
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, "***" if parts.query else "", ""))


@dataclass(frozen=True)
class StateLocation:
    """One state store: ``kind`` says which; ``path`` for SQLite, ``url`` (secret) for Postgres."""

    kind: Literal["sqlite", "postgres"]
    path: Path | None = None
    url: SecretStr | None = None

    @classmethod
    def sqlite(cls, path: Path | str) -> StateLocation:
        """The SQLite file at ``path``."""
        return cls("sqlite", path=Path(path))

    @classmethod
    def parse(cls, text: str | SecretStr) -> StateLocation:
        """``sqlite:///relative/or//absolute/path`` or ``postgresql://…``; ValueError otherwise."""
        raw = text.get_secret_value() if isinstance(text, SecretStr) else text
        raw = raw.strip()
        scheme = raw.partition("://")[0].lower()
        if scheme == "sqlite":
            path = unquote(urlsplit(raw).path)
            if not path.startswith("/") or path == "/":
                raise ValueError(f"{raw}: an SQLite state URL is sqlite:///path/to/file.sqlite")
            return cls.sqlite(path[1:])  # sqlite:///rel/path, sqlite:////abs/path
        if scheme in _POSTGRES_SCHEMES:
            if not urlsplit(raw).hostname and "host=" not in raw:
                raise ValueError(f"{redact_url(raw)}: a PostgreSQL state URL names a host")
            return cls("postgres", url=SecretStr(raw))
        raise ValueError(f"{redact_url(raw)}: a state URL starts with sqlite:/// or postgresql://")

    @property
    def display(self) -> str:
        """How messages, reports and logs name the store: a path, or the URL without password."""
        if self.path is not None:
            return str(self.path)
        assert self.url is not None
        return redact_url(self.url.get_secret_value())

    def __str__(self) -> str:
        return self.display

    def __repr__(self) -> str:
        return f"StateLocation({self.kind!r}, {self.display!r})"


def resolve_state(
    ledger: str | Path | None, state_url: SecretStr | None, default: Path, *, block: bool = False
) -> StateLocation:
    """The store a command uses: the state URL (``LMS_SYNC_STATE_URL``, or a Secret block's when
    ``block``), else the ``--ledger`` file, else ``default``; a file and a URL is a usage error."""
    if ledger is not None and (state_url is not None or block):
        raise SettingsError(
            "give the state either as --ledger PATH or as a state URL "
            "(LMS_SYNC_STATE_URL or --state-block), not both"
        )
    if state_url is None:
        return StateLocation.sqlite(ledger if ledger is not None else default)
    return StateLocation.parse(state_url)
