"""Which profiled column fills each mapping field: a score per field, the best free column wins."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from transforms.export_profile.column_names import ID_WORDS, STATUS_WORDS, name_words
from transforms.export_profile.profiles import ColumnProfile
from transforms.export_profile.statuses import status_class

_USER_NAMES = ("user", "employee", "student", "learner", "worker", "person", "member", "userid")
_LO_NAMES = ("course", "lo", "object", "item", "content", "activity", "module", "training",
             "scorm", "learning", "offering", "program", "curriculum")  # fmt: skip


def pick(
    columns: Sequence[ColumnProfile], used: set[str], score: Callable[[ColumnProfile], float]
) -> ColumnProfile | None:
    """The free column with the highest positive score (ties: the first in the header)."""
    best: tuple[float, ColumnProfile] | None = None
    for column in columns:
        if column.name in used:
            continue
        points = score(column)
        if points > 0 and (best is None or points > best[0]):
            best = (points, column)
    return best[1] if best else None


def user_score(column: ColumnProfile) -> float:
    """How much a column looks like the user id."""
    words = name_words(column.name)
    if column.kind not in ("id", "number") or not words & set(_USER_NAMES):
        return 0
    return 3 + ("id" in words) - column.blank_rate


def email_score(column: ColumnProfile) -> float:
    """How much a column looks like the users' e-mail."""
    return 1.0 if column.kind == "email" else 0.0


def lo_score(column: ColumnProfile) -> float:
    """How much a column looks like the course / learning object id."""
    words = name_words(column.name)
    if not (column.kind == "id" or (ID_WORDS & words and column.kind != "email")):
        return 0
    if words & {"user", "employee", "student", "learner", "worker", "person", "member"}:
        return 0
    hits = len(words & set(_LO_NAMES))
    return (2 + hits + ("reference" in words or "ref" in words)) if hits else 1 - column.blank_rate


def completed_score(column: ColumnProfile) -> float:
    """How much a column looks like the completion time."""
    if column.kind != "timestamp":
        return 0
    words = name_words(column.name)
    points = 1.0
    points += 3 * bool(words & {"completed", "completion", "complete", "finished", "passed"})
    points += bool(words & {"modified", "end", "ended", "date", "at", "on"})
    points -= 3 * bool(words & {"revision", "start", "started", "due", "enrolled", "created"})
    return max(points - column.blank_rate, 0.01)


def spent_score(column: ColumnProfile) -> float:
    """How much a column looks like the time spent."""
    if column.kind != "duration":
        return 0
    words = name_words(column.name)
    points = 1 + 2 * bool(words & {"spent", "duration", "total", "elapsed"})
    return points - 2 * ("credit" in words) - column.blank_rate + 0.01


def score_score(column: ColumnProfile) -> float:
    """How much a column looks like the score."""
    if column.kind != "score":
        return 0
    return 1 + ("score" in name_words(column.name)) - column.blank_rate + 0.01


def status_score(column: ColumnProfile) -> float:
    """How much a column looks like the result status (known pass/fail values count)."""
    if column.kind != "status":
        return 0
    known = sum(status_class(v) in ("pass", "fail") for v in column.values)
    return 5 * bool(STATUS_WORDS & name_words(column.name)) + known
