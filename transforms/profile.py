"""Profile an export's columns (kind, blanks, samples) and propose a starting mapping file.

Kinds are guessed from column names and values, and every guess a converter can check is checked
with that converter (``to_utc_millis``, ``to_iso_durations``, ``to_scores``): among the candidate
formats, units or scales the one with the fewest row errors wins. Pure: whole Arrow columns in,
a :class:`Profile` and YAML text out.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

from transforms.converted import Converted
from transforms.durations import parse_duration, to_iso_durations
from transforms.scores import to_scores
from transforms.text import clean_text, match_key_of
from transforms.timestamps import to_utc_millis

Kind = Literal["empty", "id", "email", "timestamp", "duration", "score", "status", "text", "number"]

ISO = "iso"  # Profile format of a column of ISO 8601 text (the mapping leaves ``format`` out)
TIMESTAMP_FORMATS: tuple[str | None, ...] = (  # candidates, ISO 8601 (None) first
    None, "%m/%d/%Y %I:%M %p", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y", "%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S", "%d/%m/%Y", "%d.%m.%Y %H:%M %z",
    "%d.%m.%Y %H:%M:%S %z", "%d.%m.%Y %H:%M", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y",
    "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y/%m/%d", "%d-%m-%Y %H:%M", "%d-%m-%Y",
    "%d-%b-%Y %H:%M", "%d-%b-%Y", "%d %b %Y %H:%M", "%d %b %Y", "%b %d, %Y %I:%M %p", "%b %d, %Y",
    "%Y%m%d",
)  # fmt: skip
_EPOCH_RANGES = (("epoch_s", 1e8, 4.2e9), ("epoch_ms", 1e11, 4.2e12), ("excel_serial", 2e4, 8e4))
_NO_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)  # profiling judges formats, not run times
_PROBE_VALUES = 200  # distinct values each candidate format is tried on
_GOOD_SHARE = 0.8  # share of non-blank rows a kind's converter must accept
_SAMPLES = 5

_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
_NUMERIC = r"^[+-]?(?:\d+(?:[.,]\d+)?|[.,]\d+)$"
_DATE_SHAPE = r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}|[A-Za-z]{3} \d{1,2},? \d{4}|\d{1,2}[- ][A-Za-z]{3}"
_SCORE_MARK = r"%|\d\s*/\s*\d+(?:[.,]\d+)?$"

_ENTITIES = ("user", "employee", "student", "learner", "worker", "person", "member", "course")
_ID_WORDS = frozenset({"id", "ids", "uuid", "guid", "code", "key", "ref", "reference", "idnumber"})
_ID_WORDS_WITH_ENTITY = frozenset({"number", "no", "nr", "num", "name"})
_DATE_WORDS = frozenset(
    {"date", "datetime", "timestamp", "modified", "created", "completed", "completion",
     "finished", "updated", "time", "when", "dt"}
)  # fmt: skip
_DURATION_UNITS = {
    "hours": "hours", "hour": "hours", "hrs": "hours", "hr": "hours",
    "minutes": "minutes", "minute": "minutes", "mins": "minutes", "min": "minutes",
    "seconds": "seconds", "second": "seconds", "secs": "seconds", "sec": "seconds",
    "days": "excel_days",
}  # fmt: skip
_DURATION_WORDS = frozenset({"duration", "spent", "elapsed", "length", *_DURATION_UNITS})
_SCORE_WORDS = frozenset({"score", "percent", "percentage", "pct", "mark", "points", "grade"})
_STATUS_WORDS = frozenset({"status", "result", "outcome", "state", "verdict"})

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


@dataclass(frozen=True)
class ColumnProfile:
    """What one column looks like: its guessed kind and the converter settings that fit it.

    ``format`` (timestamps: ``iso``, a strptime pattern, ``epoch_s`` …, ``typed``), ``unit``
    (durations), ``scale`` (scores) are the best candidates; ``errors`` is how many non-blank rows
    that converter still rejects; ``values`` holds status-like columns' distinct values, most
    frequent first; ``note`` says what the guess is unsure about.
    """

    name: str
    kind: Kind
    rows: int
    blanks: int
    distinct: int
    samples: tuple[str, ...]
    format: str | None = None
    unit: str | None = None
    scale: str | None = None
    errors: int = 0
    values: tuple[str, ...] = ()
    note: str | None = None

    @property
    def blank_rate(self) -> float:
        """Share of rows that are blank (DESIGN §5 blanks: empty, spaces, N/A, NULL)."""
        return self.blanks / self.rows if self.rows else 0.0

    @property
    def detail(self) -> str:
        """The converter setting in a few words, for the inspect table."""
        if self.kind == "timestamp":
            return {ISO: "ISO 8601", "typed": "typed"}.get(self.format or "", self.format or "")
        if self.kind == "duration":
            return f"bare numbers in {self.unit}" if self.unit else "self-describing"
        return self.scale or ""


@dataclass(frozen=True)
class Profile:
    """A sampled export: its columns' profiles plus how the source was read."""

    columns: tuple[ColumnProfile, ...]
    rows: int
    format: Literal["csv", "parquet"] = "csv"
    delimiter: str | None = None
    encoding: str | None = None
    column_by_name: dict[str, ColumnProfile] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "column_by_name", {c.name: c for c in self.columns})


def profile_table(
    table: pa.Table,
    *,
    fmt: Literal["csv", "parquet"] = "csv",
    delimiter: str | None = None,
    encoding: str | None = None,
) -> Profile:
    """Profile every column of ``table`` (a sample of the export)."""
    columns = tuple(profile_column(name, table.column(name)) for name in table.column_names)
    return Profile(columns, table.num_rows, fmt, delimiter, encoding)


def profile_column(name: str, values: pa.Array | pa.ChunkedArray) -> ColumnProfile:
    """Blank count, distinct count, samples and the guessed kind of one column."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if pa.types.is_large_string(values.type):
        values = values.cast(pa.string())
    present = clean_text(values).drop_null()
    counts = pc.value_counts(present) if len(present) else pa.array([], pa.struct([]))
    base = {
        "name": name,
        "rows": len(values),
        "blanks": len(values) - len(present),
        "distinct": len(counts),
        "samples": tuple(_shown(v) for v in pc.unique(present)[:_SAMPLES].to_pylist()),
    }
    if not len(present):
        return ColumnProfile(kind="empty", **base)  # type: ignore[arg-type]
    guess = _guess(_words(name), present, counts)
    return ColumnProfile(**base, **guess)  # type: ignore[arg-type]


# --- kind inference --------------------------------------------------------------------------


def _guess(words: set[str], present: pa.Array, counts: pa.Array) -> dict[str, object]:
    kind = present.type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return {"kind": "timestamp", "format": "typed"}
    if pa.types.is_duration(kind):
        return {"kind": "duration"}
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return _guess_number(words, present, pc.cast(present, pa.string()))
    if not pa.types.is_string(kind):
        return {"kind": "text"}
    n = len(present)
    if _share(present, _EMAIL) >= _GOOD_SHARE:
        return {"kind": "email"}
    if _share(present, _NUMERIC) >= 0.9:
        return _guess_number(words, present, present)
    if _share(present, _DATE_SHAPE) >= 0.5 or _DATE_WORDS & (words - {"time"}):
        stamp = _best_timestamp(present)
        if stamp is not None and n - stamp[1] >= _GOOD_SHARE * n:
            return _timestamp(stamp[0], stamp[1], present)
    if _share(present, _SCORE_MARK) >= 0.5 or (_SCORE_WORDS & words and "grade" not in words):
        scale, errors = _best_scale(present)
        if n - errors >= _GOOD_SHARE * n:
            return {"kind": "score", "scale": scale, "errors": errors}
    duration = _guess_duration(words, present)
    if duration is not None:
        return duration
    return _guess_text(words, present, counts)


def _guess_number(words: set[str], present: pa.Array, text: pa.Array) -> dict[str, object]:
    """A column of numbers (typed or as text): id, epoch timestamp, duration, score or number."""
    numbers = _floats(text)
    if _is_id_name(words):
        return {"kind": "id"}
    if _DURATION_WORDS & words or {"total", "time"} <= words:
        return _duration_of_numbers(words, present, numbers)
    if _share(text, r"^0\d") > 0:  # leading zeros: an id, not a number
        return {"kind": "id"}
    if _SCORE_WORDS & words:
        scale, errors = _best_scale(text)
        return {"kind": "score", "scale": scale, "errors": errors}
    median = statistics.median(numbers) if numbers else 0.0
    for fmt, low, high in _EPOCH_RANGES:
        named = bool(_DATE_WORDS & words)
        if low <= median <= high and (named or fmt != "excel_serial"):
            errors = _timestamp_errors(present, fmt)
            if errors <= (1 - _GOOD_SHARE) * len(present):
                note = None if named else "read as a date from the size of its numbers"
                return {"kind": "timestamp", "format": fmt, "errors": errors, "note": note}
    return {"kind": "number"}


def _is_id_name(words: set[str]) -> bool:
    if _ID_WORDS & words:
        return True
    return bool(_ID_WORDS_WITH_ENTITY & words and words & {*_ENTITIES, "item", "object"})


def _best_timestamp(present: pa.Array) -> tuple[str | None, int] | None:
    """The candidate format with the fewest errors on a probe, then counted on every row."""
    probe = _probe(present)
    best: tuple[int, str | None] | None = None
    for fmt in TIMESTAMP_FORMATS:
        errors = _timestamp_errors(probe, fmt)
        if best is None or errors < best[0]:
            best = (errors, fmt)
        if errors == 0:
            break
    if best is None or best[0] >= len(probe):
        return None
    return best[1], _timestamp_errors(present, best[1])


def _timestamp_errors(values: pa.Array, fmt: str | None) -> int:
    return _errors(to_utc_millis(values, fmt, "UTC", _NO_FUTURE))


def _timestamp(fmt: str | None, errors: int, present: pa.Array) -> dict[str, object]:
    note = None
    swapped = _swap_day_month(fmt)
    if fmt is not None and swapped is not None:
        probe = _probe(present)
        if _timestamp_errors(probe, swapped) == _timestamp_errors(probe, fmt):
            note = "day and month order cannot be told apart from these values"
    return {"kind": "timestamp", "format": fmt or ISO, "errors": errors, "note": note}


def _swap_day_month(fmt: str | None) -> str | None:
    """The same pattern with day and month swapped (``%m/%d`` ↔ ``%d/%m``), if it has them."""
    if fmt is None or not ("%m/%d" in fmt or "%d/%m" in fmt):
        return None
    return fmt.replace("%m/%d", "\0").replace("%d/%m", "%m/%d").replace("\0", "%d/%m")


def _best_scale(text: pa.Array) -> tuple[str, int]:
    percent, fraction = _errors(to_scores(text, "percent")), _errors(to_scores(text, "fraction"))
    plain = _floats(text)
    small = bool(plain) and max(plain) <= 1 and any(n != int(n) for n in plain)
    if fraction < percent or (fraction == percent and small):
        return "fraction", fraction
    return "percent", percent


def _guess_duration(words: set[str], present: pa.Array) -> dict[str, object] | None:
    """Self-describing durations (``1h 30m``, ``PT1H``, ``1:30``), bare numbers given a unit."""
    described = to_iso_durations(present, None)
    bare = pc.and_(described.invalid, pc.match_substring_regex(present, _NUMERIC))
    n_bare = pc.sum(bare).as_py() or 0
    n_good = len(present) - _errors(described)
    named = bool(_DURATION_WORDS & words or {"total", "time"} <= words)
    if n_good == 0 or (n_good + n_bare < _GOOD_SHARE * len(present)):
        return None
    if not named and n_good < _GOOD_SHARE * len(present):
        return None
    if not n_bare:
        return {"kind": "duration", "errors": _errors(described)}
    good = pc.unique(pc.filter(present, pc.invert(described.invalid)))
    seconds = [_seconds(v) for v in _probe(good).to_pylist()]
    bare_numbers = _floats(pc.filter(present, bare))
    unit, note = _unit_for(words, bare_numbers, [s for s in seconds if s is not None])
    errors = _errors(to_iso_durations(present, unit))
    return {"kind": "duration", "unit": unit, "errors": errors, "note": note}


def _duration_of_numbers(
    words: set[str], present: pa.Array, numbers: list[float]
) -> dict[str, object]:
    unit, note = _unit_for(words, numbers, [])
    errors = _errors(to_iso_durations(present, unit))
    return {"kind": "duration", "unit": unit, "errors": errors, "note": note}


def _unit_for(
    words: set[str], numbers: list[float], described_seconds: list[float]
) -> tuple[str, str | None]:
    """The unit of bare numbers: from the name, else closest to the self-describing values."""
    for word in sorted(words):
        if word in _DURATION_UNITS:
            return _DURATION_UNITS[word], None
    note = "unit of bare numbers guessed from their size"
    if not numbers:
        return "minutes", note
    median = statistics.median(numbers)
    if described_seconds and median > 0:
        target = statistics.median(described_seconds)
        per_unit = {"seconds": 1, "minutes": 60, "hours": 3600}
        unit = min(per_unit, key=lambda u: abs(_log(median * per_unit[u]) - _log(target)))
        return unit, note
    if median <= 24 and any(n != int(n) for n in numbers):
        return "hours", note
    return ("minutes" if median <= 600 else "seconds"), note


def _guess_text(words: set[str], present: pa.Array, counts: pa.Array) -> dict[str, object]:
    n, distinct = len(present), len(counts)
    spaced = _share(present, r"\s")
    if _is_id_name(words) and spaced < 0.05:
        return {"kind": "id"}
    known = sum(_status_class(v) is not None for v in counts.field("values").to_pylist())
    lowcard = distinct <= 30 and distinct <= max(3, 0.3 * n)
    named = bool(_STATUS_WORDS & words) and distinct <= min(50, 0.5 * n)
    if lowcard or known or named:
        ordered = sorted(counts.to_pylist(), key=lambda c: -c["counts"])
        return {"kind": "status", "values": tuple(c["values"] for c in ordered)}
    if spaced < 0.05 and _share(present, r"\d") >= 0.5 and distinct >= 0.5 * n:
        return {"kind": "id"}
    return {"kind": "text"}


# --- small helpers ---------------------------------------------------------------------------


def _words(name: str) -> set[str]:
    """Lower-case words of a column name: ``completedAt`` / ``User_ID`` / ``userid`` split up."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).lower()
    words: set[str] = set()
    for word in re.findall(r"[a-z]+|\d+", spaced):
        words.add(word)
        for prefix in ("time", *_ENTITIES):
            if word.startswith(prefix) and word != prefix:
                words.update((prefix, word[len(prefix) :]))
        if word.endswith("id") and len(word) > 2:
            words.update((word[:-2], "id"))
    return words


def _floats(text: pa.Array) -> list[float]:
    """The values of ``text`` that are plain numbers (decimal comma allowed), as floats."""
    numeric = pc.filter(text, pc.match_substring_regex(text, _NUMERIC))
    return pc.cast(pc.replace_substring(numeric, ",", "."), pa.float64()).to_pylist()


def _share(text: pa.Array, pattern: str) -> float:
    if not len(text):
        return 0.0
    return float((pc.sum(pc.match_substring_regex(text, pattern)).as_py() or 0) / len(text))


def _probe(present: pa.Array) -> pa.Array:
    unique = pc.unique(present)
    if len(unique) <= _PROBE_VALUES:
        return unique
    step = len(unique) / _PROBE_VALUES
    return unique.take(pa.array([int(i * step) for i in range(_PROBE_VALUES)]))


def _errors(converted: Converted) -> int:
    return int(pc.sum(pc.cast(converted.invalid, pa.int64())).as_py() or 0)


def _seconds(text: str) -> float | None:
    try:
        return float(parse_duration(text, None))
    except ValueError:
        return None


def _log(x: float) -> float:
    return math.log(max(x, 1e-9))


def _shown(value: object) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _status_class(value: str) -> str | None:
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


# --- the proposal ----------------------------------------------------------------------------

_USER_NAMES = ("user", "employee", "student", "learner", "worker", "person", "member", "userid")
_LO_NAMES = ("course", "lo", "object", "item", "content", "activity", "module", "training",
             "scorm", "learning", "offering", "program", "curriculum")  # fmt: skip


_PASSTHROUGH_WORDS = frozenset(
    {"title", "type", "name", "division", "department", "region", "organization",
     "organisation", "category", "attempt", "grade", "content", "credit"}
)  # fmt: skip
_PERSON_WORDS = frozenset(
    {"user", "employee", "student", "learner", "worker", "person", "member", "first", "last",
     "full", "instructor", "supervisor"}
)  # fmt: skip


def propose_mapping(profile: Profile, header: Sequence[str]) -> str:
    """A commented starting mapping (DESIGN §4) for the profiled export; TODOs mark the guesses."""
    columns = [profile.column_by_name[name] for name in header if name in profile.column_by_name]
    used: set[str] = set()
    lines = [
        f"# Proposed by `lms-sync inspect` from {profile.rows:,} sampled rows. Review every TODO,",
        "# then try it: lms-sync run FILE -m THIS.yaml --dry-run",
        "version: 1",
        *_source_lines(profile, columns),
        "# account: {column: …}  # the StackOne account; default: $STACKONE_ACCOUNT_ID",
        *_user_lines(columns, used),
        "fields:",
        *_field_lines(columns, used),
    ]
    status = _pick(columns, used, _status_score)
    lines += _result_lines(status, used)
    lines += _passthrough_lines(columns, used)
    lines += _filter_lines(status)
    lines.append("repeats: first")
    return "\n".join(lines) + "\n"


def _source_lines(profile: Profile, columns: Sequence[ColumnProfile]) -> list[str]:
    lines = ["source:", f"  format: {profile.format}"]
    if profile.format == "csv":
        lines.append(f"  delimiter: {_yaml(profile.delimiter or 'auto')}")
        lines.append(f"  encoding: {profile.encoding or 'utf-8'}")
    stamps = [c for c in columns if c.kind == "timestamp"]
    absolute = stamps and all(
        c.format in ("epoch_s", "epoch_ms") or (c.format or "").endswith("%z") for c in stamps
    )
    comment = (
        "# offsets or epochs in the data: the zone only matters for naive values"
        if absolute
        else "# TODO: zone of naive timestamps (IANA name, e.g. America/New_York)"
    )
    return [*lines, f"  timezone: UTC  {comment}"]


def _user_lines(columns: Sequence[ColumnProfile], used: set[str]) -> list[str]:
    user = _pick(columns, used, _user_score)
    email = _pick(columns, used | ({user.name} if user else set()), _email_score)
    if user is not None:
        lines = ["user:", f"  column: {_yaml(user.name)}  # {_said(user)}"]
        if email is not None:
            lines.append(f"  # or look users up by e-mail: column: {_yaml(email.name)}")
            lines.append("  #                             resolve_by: email")
        used.add(user.name)
        return lines
    if email is not None:
        used.add(email.name)
        return ["user:", f"  column: {_yaml(email.name)}  # {_said(email)}", "  resolve_by: email"]
    first = columns[0]
    used.add(first.name)
    return ["user:", f"  column: {_yaml(first.name)}  # TODO: no user id column found"]


def _field_lines(columns: Sequence[ColumnProfile], used: set[str]) -> list[str]:
    lines = []
    lo = _pick(columns, used, _lo_score)
    if lo is None:
        lo = next((c for c in columns if c.name not in used), columns[0])
        lines.append("  # TODO: no course / learning object id column found; pick the right one")
    used.add(lo.name)
    lines.append(_entry("learning_object_external_reference", lo, {}))
    stamp = _pick(columns, used, _completed_score)
    if stamp is None:
        lines.append("  # completed_at: {column: …}  # TODO: no date column found")
    else:
        used.add(stamp.name)
        fmt = None if stamp.format in (ISO, "typed") else stamp.format
        lines.append(_entry("completed_at", stamp, {"format": fmt}))
    spent = _pick(columns, used, _spent_score)
    if spent is None:
        lines.append("  # time_spent: {column: …, unit: minutes}  # no duration column found")
    else:
        used.add(spent.name)
        lines.append(_entry("time_spent", spent, {"unit": spent.unit}))
    score = _pick(columns, used, _score_score)
    if score is not None:
        used.add(score.name)
        lines.append(_entry("score", score, {"scale": score.scale}))
    return lines


def _result_lines(status: ColumnProfile | None, used: set[str]) -> list[str]:
    if status is None:
        return ["  # result: {column: …, map: {Passed: Pass, Failed: Fail}}  # no status column"]
    used.add(status.name)
    lines = ["  result:", f"    column: {_yaml(status.name)}  # {_said(status)}", "    map:"]
    seen: set[str] = set()
    entries = 0
    has_pass_word = any(match_key_of(v).startswith("pass") for v in status.values)
    for value in status.values:
        key, kind = match_key_of(value), _status_class(value)
        if key in seen or kind not in ("pass", "fail"):
            continue
        seen.add(key)
        entries += 1
        comment = ""
        if kind == "pass" and key.startswith("complet") and has_pass_word:
            comment = "  # TODO: finished without a verdict? remove it to send unmapped_value"
        lines.append(f"      {_yaml(value)}: {'Pass' if kind == 'pass' else 'Fail'}{comment}")
    if not entries:
        lines[-1] = "    map: {}  # TODO: map the statuses meaning pass or fail"
    others = [v for v in status.values if _status_class(v) == "finished"]
    if others:
        lines.append(f"    # sent as unmapped_value (finished, no verdict): {_listed(others)}")
    return lines


def _passthrough_lines(columns: Sequence[ColumnProfile], used: set[str]) -> list[str]:
    """A commented suggestion of course-describing columns to send as passthrough."""
    names = [
        _yaml(c.name)
        for c in columns
        if c.name not in used
        and c.kind in ("status", "text", "number")
        and _words(c.name) & _PASSTHROUGH_WORDS
        and not _words(c.name) & _PERSON_WORDS
    ]
    if not names:
        return []
    return [f"  # passthrough: {{columns: [{', '.join(names)}]}}  # extra fields, if wanted"]


def _filter_lines(status: ColumnProfile | None) -> list[str]:
    if status is None:
        return ["filters: []"]
    keep: list[str] = []
    left_out: list[str] = []
    unknown: list[str] = []
    seen: set[str] = set()
    for value in status.values:
        key = match_key_of(value)
        if key in seen:
            continue
        seen.add(key)
        kind = _status_class(value)
        if kind in ("pass", "fail", "finished"):
            keep.append(value)
        elif kind == "unfinished":
            left_out.append(value)
        else:
            unknown.append(value)
    if not keep or not (left_out or unknown):
        return ["filters: []  # rows to leave out on purpose: {column: …, in: [finished statuses]}"]
    listed = ", ".join(_yaml(v) for v in keep)
    lines = ["filters:  # rows outside the list are skipped on purpose (not errors)"]
    lines.append(f"  - {{column: {_yaml(status.name)}, in: [{listed}]}}")
    if left_out:
        lines.append(f"  # skipped as unfinished: {_listed(left_out)}")
    if unknown:
        lines.append(f"  # TODO: also skipped, add them if they are finished: {_listed(unknown)}")
    return lines


def _entry(key: str, column: ColumnProfile, options: dict[str, str | None]) -> str:
    parts = [f"column: {_yaml(column.name)}"]
    parts += [f"{name}: {_yaml(value)}" for name, value in options.items() if value is not None]
    return f"  {key}: {{{', '.join(parts)}}}  # {_said(column)}"


def _said(column: ColumnProfile) -> str:
    """The comment after a chosen column: what was seen, and a TODO when unsure."""
    text = f"{column.kind}, {column.blank_rate:.0%} blank"
    if column.errors:
        text += f", {column.errors} row(s) the converter rejects"
    if column.note:
        text += f"; TODO: {column.note}"
    return text


def _pick(
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


def _user_score(column: ColumnProfile) -> float:
    words = _words(column.name)
    if column.kind not in ("id", "number") or not words & set(_USER_NAMES):
        return 0
    return 3 + ("id" in words) - column.blank_rate


def _email_score(column: ColumnProfile) -> float:
    return 1.0 if column.kind == "email" else 0.0


def _lo_score(column: ColumnProfile) -> float:
    words = _words(column.name)
    if not (column.kind == "id" or (_ID_WORDS & words and column.kind != "email")):
        return 0
    if words & {"user", "employee", "student", "learner", "worker", "person", "member"}:
        return 0
    hits = len(words & set(_LO_NAMES))
    return (2 + hits + ("reference" in words or "ref" in words)) if hits else 1 - column.blank_rate


def _completed_score(column: ColumnProfile) -> float:
    if column.kind != "timestamp":
        return 0
    words = _words(column.name)
    points = 1.0
    points += 3 * bool(words & {"completed", "completion", "complete", "finished", "passed"})
    points += bool(words & {"modified", "end", "ended", "date", "at", "on"})
    points -= 3 * bool(words & {"revision", "start", "started", "due", "enrolled", "created"})
    return max(points - column.blank_rate, 0.01)


def _spent_score(column: ColumnProfile) -> float:
    if column.kind != "duration":
        return 0
    words = _words(column.name)
    points = 1 + 2 * bool(words & {"spent", "duration", "total", "elapsed"})
    return points - 2 * ("credit" in words) - column.blank_rate + 0.01


def _score_score(column: ColumnProfile) -> float:
    if column.kind != "score":
        return 0
    return 1 + ("score" in _words(column.name)) - column.blank_rate + 0.01


def _status_score(column: ColumnProfile) -> float:
    if column.kind != "status":
        return 0
    known = sum(_status_class(v) in ("pass", "fail") for v in column.values)
    return 5 * bool(_STATUS_WORDS & _words(column.name)) + known


def _listed(values: Sequence[str]) -> str:
    return ", ".join(_yaml(v) for v in values)


def _yaml(value: str) -> str:
    """A YAML scalar: plain when safe (also inside flow collections), else double-quoted."""
    plain = re.fullmatch(r"[A-Za-z_][A-Za-z0-9 _.\-/()]*", value) and not value.endswith(" ")
    special = value.lower() in {"yes", "no", "on", "off", "true", "false", "null", "y", "n"}
    if plain and not special:
        return value
    return json.dumps(value, ensure_ascii=not value.isprintable())  # YAML refuses raw controls
