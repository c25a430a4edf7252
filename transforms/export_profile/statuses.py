"""Status values by meaning: passed, failed, finished without a verdict, or unfinished."""

from __future__ import annotations

from transforms.text import match_key_of

# Status values by meaning, as match keys with "-" and "_" read as spaces.
_PASS = frozenset(
    {"pass", "passed", "complete", "completed", "course complete", "success", "successful",
     "succeeded", "satisfied", "bestanden", "achieved", "certified"}
)  # fmt: skip
_FAIL = frozenset(
    {"fail", "failed", "not completed", "not complete", "not passed", "unsuccessful",
     "nicht bestanden", "not achieved", "failure"}
)  # fmt: skip
_FINISHED_NO_VERDICT = frozenset({"exempt", "waived", "attended", "excused", "credited"})
_UNFINISHED = frozenset(
    {"in progress", "inprogress", "incomplete", "registered", "enrolled", "not started",
     "no show", "noshow", "browsed", "not attempted", "pending", "pending approval", "cancelled",
     "canceled", "withdrawn", "assigned", "scheduled", "waitlisted", "expired", "denied",
     "started", "approved", "open"}
)  # fmt: skip


def status_class(value: str) -> str | None:
    """pass, fail, finished (no verdict), unfinished, or None for a status word not known."""
    key = match_key_of(value.replace("-", " ").replace("_", " "))
    for name, words in (
        ("pass", _PASS),
        ("fail", _FAIL),
        ("finished", _FINISHED_NO_VERDICT),
        ("unfinished", _UNFINISHED),
    ):
        if key in words:
            return name
    return None
