"""The query filter of a user lookup on ``GET /unified/lms/users`` (paged by ``cursor_pages``)."""

from __future__ import annotations

__all__ = ["user_filter"]


def user_filter(email: str | None, external_reference: str | None) -> dict[str, str]:
    """The query filter for exactly one of ``email`` / ``external_reference``."""
    if (email is None) == (external_reference is None):
        raise ValueError("give exactly one of email or external_reference")
    return (
        {"filter[email]": email}
        if email is not None
        else {"filter[external_reference]": str(external_reference)}
    )
