"""What a column's name says: its words and the word sets that hint at each kind."""

from __future__ import annotations

import re

ENTITIES = ("user", "employee", "student", "learner", "worker", "person", "member", "course")
ID_WORDS = frozenset({"id", "ids", "uuid", "guid", "code", "key", "ref", "reference", "idnumber"})
_ID_WORDS_WITH_ENTITY = frozenset({"number", "no", "nr", "num", "name"})
DATE_WORDS = frozenset(
    {"date", "datetime", "timestamp", "modified", "created", "completed", "completion",
     "finished", "updated", "time", "when", "dt"}
)  # fmt: skip
DURATION_UNITS = {
    "hours": "hours", "hour": "hours", "hrs": "hours", "hr": "hours",
    "minutes": "minutes", "minute": "minutes", "mins": "minutes", "min": "minutes",
    "seconds": "seconds", "second": "seconds", "secs": "seconds", "sec": "seconds",
    "days": "excel_days",
}  # fmt: skip
DURATION_WORDS = frozenset({"duration", "spent", "elapsed", "length", *DURATION_UNITS})
SCORE_WORDS = frozenset({"score", "percent", "percentage", "pct", "mark", "points", "grade"})
STATUS_WORDS = frozenset({"status", "result", "outcome", "state", "verdict"})


def name_words(name: str) -> set[str]:
    """Lower-case words of a column name: ``completedAt`` / ``User_ID`` / ``userid`` split up."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).lower()
    words: set[str] = set()
    for word in re.findall(r"[a-z]+|\d+", spaced):
        words.add(word)
        for prefix in ("time", *ENTITIES):
            if word.startswith(prefix) and word != prefix:
                words.update((prefix, word[len(prefix) :]))
        if word.endswith("id") and len(word) > 2:
            words.update((word[:-2], "id"))
    return words


def is_id_name(words: set[str]) -> bool:
    """Whether a name's words say id (``id``, ``code`` …, or ``number`` next to an entity)."""
    if ID_WORDS & words:
        return True
    return bool(_ID_WORDS_WITH_ENTITY & words and words & {*ENTITIES, "item", "object"})
