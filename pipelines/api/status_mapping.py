"""From an HTTP answer to a ``Result`` or an error (DESIGN §7): codes, terminal statuses, messages.

401/403 (``AuthError``) and 501 (``AbortError``) stop the run; other failures become row codes.
The client meets a 403 first: it names one account (``account_refusals``), whose rows then fail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from pipelines.api.completions import Result
from pipelines.core.errors import AbortError, ApiError, AuthError
from pipelines.core.outcomes import RowOutcome

__all__ = [
    "Answer",
    "PayloadReader",
    "json_body",
    "lookup_payload",
    "raise_if_terminal",
    "remote_id",
    "server_message",
    "submission_result",
    "unified_id",
]

_MESSAGE_LIMIT = 1000
_FAILED_CODES = {400: "http_400", 404: "http_404", 412: "http_412", 422: "http_422"}


PayloadReader = Callable[["Answer", Callable[[str], str], str], dict[str, Any]]


@dataclass(frozen=True)
class Answer:
    """The last answer of a request after retries: a response, or the last transport error."""

    response: httpx.Response | None
    attempts: int
    error: str | None = None
    exhausted: bool = False


def submission_result(
    key: str, answer: Answer, redact: Callable[[str], str], base_url: str
) -> Result:
    """The ``Result`` of a completion's answer; 401/403/501 raise (see ``raise_if_terminal``)."""
    response = answer.response
    if response is None:
        failed = RowOutcome.FAILED
        return Result(key, failed, "retries_exhausted", None, answer.error, None, answer.attempts)
    status, attempts = response.status_code, answer.attempts
    payload = json_body(response)
    message = server_message(payload, response, redact)
    if answer.exhausted:
        return Result(key, RowOutcome.FAILED, "retries_exhausted", status, message, None, attempts)
    remote, unified = remote_id(payload), unified_id(payload)
    if 200 <= status < 300:
        return Result(key, RowOutcome.DELIVERED, None, status, None, remote, attempts, unified)
    if status == 409:
        duplicate = RowOutcome.DUPLICATE
        return Result(key, duplicate, "http_409", status, message, remote, attempts, unified)
    raise_if_terminal(status, message, base_url)
    code = _FAILED_CODES.get(status, "http_4xx" if 400 <= status < 500 else f"http_{status}")
    return Result(key, RowOutcome.FAILED, code, status, message, None, attempts)


def lookup_payload(
    answer: Answer, redact: Callable[[str], str], base_url: str, what: str = "user lookup"
) -> dict[str, Any]:
    """The JSON object of a successful lookup, else raise ``ApiError``/``AbortError``."""
    response = answer.response
    if response is None:
        raise ApiError(f"{what}: {answer.error}", code="retries_exhausted", retryable=True)
    status = response.status_code
    payload = json_body(response)
    if answer.exhausted or not 200 <= status < 300:
        message = server_message(payload, response, redact)
        raise_if_terminal(status, message, base_url)
        code = (
            "retries_exhausted"
            if answer.exhausted
            else _FAILED_CODES.get(status, "http_4xx" if status < 500 else f"http_{status}")
        )
        raise ApiError(
            f"{what}: HTTP {status}: {message}",
            code=code,
            http_status=status,
            retryable=answer.exhausted,
        )
    if not isinstance(payload, dict):
        raise ApiError(f"{what}: the answer is not a JSON object", code="http_4xx")
    return payload


def raise_if_terminal(status: int, message: str, base_url: str) -> None:
    """401/403 raise ``AuthError``, 501 raises ``AbortError``: the run cannot go on."""
    if status in (401, 403):
        raise AuthError(f"HTTP {status} from {base_url}: {message}", http_status=status)
    if status == 501:
        raise AbortError(f"HTTP 501 from {base_url}: {message}", http_status=status)


def server_message(payload: Any, response: httpx.Response, redact: Callable[[str], str]) -> str:
    """The server's message (StackOne error body), redacted and bounded."""
    message: Any = payload.get("message") if isinstance(payload, dict) else None
    if isinstance(message, list):
        message = "; ".join(str(part) for part in message)
    if not message:
        message = response.text.strip()[:300] or response.reason_phrase or "no message"
    text = redact(str(message))
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"


def json_body(response: httpx.Response) -> Any:
    """The response body as JSON, or None when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None


def unified_id(payload: Any) -> str | None:
    """``data.id`` of a StackOne answer (the unified id of the completion), when present."""
    data = payload.get("data") if isinstance(payload, dict) else None
    value = data.get("id") if isinstance(data, dict) else None
    return str(value) if value is not None else None


def remote_id(payload: Any) -> str | None:
    """``data.remote_id`` (else ``data.id``) of a StackOne answer, when present."""
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, dict):
        return None
    value = data.get("remote_id") or data.get("id")
    return str(value) if value is not None else None
