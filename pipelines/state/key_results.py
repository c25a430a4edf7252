"""How one key's request ended (``KeyResult``), and its row for the ledger's ``deliveries`` table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipelines.state.ledger_schema import DONE, DUP, FAILED

__all__ = ["KeyResult", "record_params"]

_NOT_A_KEY_FAILURE = frozenset({401, 403, 408, 429})  # auth, timeouts, throttling: not the row
_MESSAGE_MAX = 1000
_STORED = {"delivered": DONE, "duplicate": DUP, "failed": FAILED}


@dataclass(frozen=True)
class KeyResult:
    """How one key's request ended: ``outcome`` is delivered, duplicate (409), failed or
    retries_exhausted; ``error_code`` is the §6 code."""

    key: str
    outcome: str
    http_status: int | None = None
    remote_id: str | None = None
    error_code: str | None = None
    message: str | None = None
    attempts: int = 1
    completion_id: str | None = None  # the unified id of the completion (201, or reconciled)


def record_params(result: KeyResult) -> dict[str, Any]:
    """The result's named parameters for ``RECORD_SQL``; ``lfr`` says whether the key itself
    failed (a 4xx other than auth or throttling), replaced by the run reference when written."""
    code = result.error_code
    if result.outcome == "retries_exhausted":
        outcome, code = FAILED, code or "retries_exhausted"
    elif result.outcome in _STORED:
        outcome = _STORED[result.outcome]
    else:
        raise ValueError(f"unknown outcome {result.outcome!r} for key {result.key}")
    status = result.http_status
    key_failure = (
        outcome == FAILED
        and status is not None
        and 400 <= status < 500
        and status not in _NOT_A_KEY_FAILURE
        and code != "retries_exhausted"
    )
    message = result.message[:_MESSAGE_MAX] if result.message else result.message
    return {
        "k": bytes.fromhex(result.key),
        "o": outcome,
        "a": result.attempts,
        "lfr": key_failure,
        "rid": result.remote_id,
        "st": status,
        "code": code,
        "msg": message,
        "cid": result.completion_id,
    }
