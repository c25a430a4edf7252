"""A completion to create and how it ended: ``Submission`` in, ``Result`` out.

A submission that no request could carry (blank user id, unsendable account id) fails before sending.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipelines.api.endpoints import is_header_value
from pipelines.core.outcomes import RowOutcome

__all__ = ["Result", "Submission", "unsendable"]


@dataclass(frozen=True)
class Submission:
    """One completion to create: idempotency ``key``, target account and user, JSON ``body``."""

    key: str
    account_id: str
    user_id: str
    body: bytes = field(repr=False)  # pre-serialised JSON; may hold personal data


@dataclass(frozen=True)
class Result:
    """How one submission ended; ``code`` is a §6 error code (or ``http_409`` for a duplicate)."""

    key: str
    outcome: RowOutcome  # delivered, duplicate (409) or failed
    code: str | None
    http_status: int | None
    message: str | None
    remote_id: str | None
    attempts: int
    # The unified ``data.id`` of a created (or 409) completion; kept for the ledger, not compared.
    completion_id: str | None = field(default=None, compare=False)


def unsendable(submission: Submission) -> Result | None:
    """The failed ``Result`` of a submission no request can carry, else None (send it)."""
    key = submission.key
    if not submission.user_id.strip():
        return Result(key, RowOutcome.FAILED, "invalid_user", None, "user id is blank", None, 0)
    if not is_header_value(submission.account_id):
        message = "account id is blank or has characters an HTTP header cannot carry"
        return Result(key, RowOutcome.FAILED, "invalid_account", None, message, None, 0)
    return None
