"""Accounts the API key cannot reach: a 403 names one account (``x-account-id``), a 401 none.

Once an account is answered 403, no further request for it is started this run (requests in
flight finish): each later one fails at once with ``AccountRefused``, without a slot or a send.
"""

from __future__ import annotations

from collections.abc import Callable

from pipelines.api.completions import Result, Submission
from pipelines.api.ratelimit import Slot
from pipelines.api.status_mapping import Answer, json_body, server_message
from pipelines.core.errors import AccountRefused
from pipelines.core.outcomes import RowOutcome

__all__ = ["REFUSED_CODE", "RefusedAccounts", "refused_result"]

REFUSED_CODE = "http_403"


class RefusedAccounts:
    """The accounts refused so far in this run, with the server's message for each."""

    def __init__(self, redact: Callable[[str], str], base_url: str) -> None:
        self._redact = redact
        self._base_url = base_url
        self.messages: dict[str, str] = {}

    def check(self, account_id: str, attempts: int, slot: Slot | None = None) -> None:
        """Raise ``AccountRefused`` if ``account_id`` was refused: send nothing more for it (its
        rate-limit ``slot``, if one was granted, is given back unused)."""
        message = self.messages.get(account_id)
        if message is not None:
            if slot is not None:
                slot.unused()
            raise AccountRefused(account_id, message, self._base_url, attempts)

    def check_answer(self, answer: Answer, account_id: str) -> None:
        """A final 403 refuses the account (kept for every later request), then raises."""
        response = answer.response
        if response is None or response.status_code != 403 or answer.exhausted:
            return
        message = server_message(json_body(response), response, self._redact)
        self.messages.setdefault(account_id, message)
        raise AccountRefused(account_id, message, self._base_url, answer.attempts)


def refused_result(submission: Submission, refused: AccountRefused) -> Result:
    """The failed ``Result`` of a row whose account is refused: ``http_403``, never retried."""
    return Result(
        submission.key,
        RowOutcome.FAILED,
        REFUSED_CODE,
        403,
        refused.server_message,
        None,
        refused.attempts,
    )
