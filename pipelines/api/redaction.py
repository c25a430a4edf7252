"""Keeping the StackOne API key secret: the Basic auth that carries it and a redactor for texts.

The key, its Basic token and its URL-encoded form never reach logs, exception texts or reprs.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr

__all__ = ["ApiKeyAuth", "Redactor"]


class ApiKeyAuth(httpx.Auth):
    """HTTP Basic with the API key as user name and an empty password; redacted in its repr."""

    def __init__(self, api_key: SecretStr) -> None:
        token = base64.b64encode(f"{api_key.get_secret_value()}:".encode()).decode("ascii")
        self._header = SecretStr(f"Basic {token}")

    def auth_flow(self, request: httpx.Request) -> Any:
        """Set the Authorization header on every request."""
        request.headers["Authorization"] = self._header.get_secret_value()
        yield request

    def __repr__(self) -> str:
        return "ApiKeyAuth(<redacted>)"


class Redactor:
    """Replaces the API key, its Basic token and its URL-encoded form with ``[REDACTED]``."""

    def __init__(self, api_key: SecretStr) -> None:
        key = api_key.get_secret_value()
        forms = {key, base64.b64encode(f"{key}:".encode()).decode(), quote(key, safe="")}
        self._forms = sorted((form for form in forms if form), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        """``text`` with every form of the key replaced by ``[REDACTED]``."""
        for form in self._forms:
            text = text.replace(form, "[REDACTED]")
        return text
