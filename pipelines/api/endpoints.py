"""StackOne endpoint paths and header values: what a request may carry to the right place.

User ids become one percent-encoded path segment; account ids must be valid HTTP header values.
"""

from __future__ import annotations

import re
from urllib.parse import quote

__all__ = ["USERS_PATH", "completions_path", "is_header_value"]

USERS_PATH = "/unified/lms/users"
_HEADER_VALUE = re.compile(r"^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$")


def completions_path(user_id: str) -> str:
    """``/unified/lms/users/{id}/completions`` with ``id`` percent-encoded as one path segment."""
    segment = quote(user_id, safe="")
    if segment in (".", ".."):  # would be removed as a dot-segment, reaching another endpoint
        segment = segment.replace(".", "%2E")
    return f"{USERS_PATH}/{segment}/completions"


def is_header_value(text: str) -> bool:
    """``text`` is non-blank printable ASCII without edge spaces, so a header can carry it."""
    return _HEADER_VALUE.match(text) is not None
