"""A commented starting mapping file (DESIGN §4) from a profile; TODOs mark the guesses."""

from __future__ import annotations

from collections.abc import Sequence

from transforms.export_profile.column_choice import (
    completed_score,
    email_score,
    lo_score,
    pick,
    score_score,
    spent_score,
    status_score,
    user_score,
)
from transforms.export_profile.column_names import name_words
from transforms.export_profile.profiles import ISO, ColumnProfile, Profile
from transforms.export_profile.statuses import status_class
from transforms.export_profile.yaml_scalars import yaml_listed, yaml_scalar
from transforms.text import match_key_of

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
    status = pick(columns, used, status_score)
    lines += _result_lines(status, used)
    lines += _passthrough_lines(columns, used)
    lines += _filter_lines(status)
    lines.append("repeats: first")
    return "\n".join(lines) + "\n"


def _source_lines(profile: Profile, columns: Sequence[ColumnProfile]) -> list[str]:
    lines = ["source:", f"  format: {profile.format}"]
    if profile.format == "csv":
        lines.append(f"  delimiter: {yaml_scalar(profile.delimiter or 'auto')}")
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
    user = pick(columns, used, user_score)
    email = pick(columns, used | ({user.name} if user else set()), email_score)
    if user is not None:
        lines = ["user:", f"  column: {yaml_scalar(user.name)}  # {_said(user)}"]
        if email is not None:
            lines.append(f"  # or look users up by e-mail: column: {yaml_scalar(email.name)}")
            lines.append("  #                             resolve_by: email")
        used.add(user.name)
        return lines
    if email is not None:
        used.add(email.name)
        return [
            "user:",
            f"  column: {yaml_scalar(email.name)}  # {_said(email)}",
            "  resolve_by: email",
        ]
    first = columns[0]
    used.add(first.name)
    return ["user:", f"  column: {yaml_scalar(first.name)}  # TODO: no user id column found"]


def _field_lines(columns: Sequence[ColumnProfile], used: set[str]) -> list[str]:
    lines = []
    lo = pick(columns, used, lo_score)
    if lo is None:
        unused = (c for c in columns if c.name not in used and c.kind != "nested")
        lo = next(unused, columns[0])  # no field reads a nested column
        lines.append("  # TODO: no course / learning object id column found; pick the right one")
    used.add(lo.name)
    lines.append(_entry("learning_object_external_reference", lo, {}))
    stamp = pick(columns, used, completed_score)
    if stamp is None:
        lines.append("  # completed_at: {column: …}  # TODO: no date column found")
    else:
        used.add(stamp.name)
        fmt = None if stamp.format in (ISO, "typed") else stamp.format
        lines.append(_entry("completed_at", stamp, {"format": fmt}))
    spent = pick(columns, used, spent_score)
    if spent is None:
        lines.append("  # time_spent: {column: …, unit: minutes}  # no duration column found")
    else:
        used.add(spent.name)
        lines.append(_entry("time_spent", spent, {"unit": spent.unit}))
    score = pick(columns, used, score_score)
    if score is not None:
        used.add(score.name)
        lines.append(_entry("score", score, {"scale": score.scale}))
    return lines


def _result_lines(status: ColumnProfile | None, used: set[str]) -> list[str]:
    if status is None:
        return ["  # result: {column: …, map: {Passed: Pass, Failed: Fail}}  # no status column"]
    used.add(status.name)
    lines = ["  result:", f"    column: {yaml_scalar(status.name)}  # {_said(status)}", "    map:"]
    seen: set[str] = set()
    entries = 0
    has_pass_word = any(match_key_of(v).startswith("pass") for v in status.values)
    for value in status.values:
        key, kind = match_key_of(value), status_class(value)
        if key in seen or kind not in ("pass", "fail"):
            continue
        seen.add(key)
        entries += 1
        comment = ""
        if kind == "pass" and key.startswith("complet") and has_pass_word:
            comment = "  # TODO: finished without a verdict? remove it to send unmapped_value"
        lines.append(f"      {yaml_scalar(value)}: {'Pass' if kind == 'pass' else 'Fail'}{comment}")
    if not entries:
        lines[-1] = "    map: {}  # TODO: map the statuses meaning pass or fail"
    others = [v for v in status.values if status_class(v) == "finished"]
    if others:
        lines.append(f"    # sent as unmapped_value (finished, no verdict): {yaml_listed(others)}")
    return lines


def _passthrough_lines(columns: Sequence[ColumnProfile], used: set[str]) -> list[str]:
    """A commented suggestion of course-describing columns to send as passthrough."""
    names = [
        yaml_scalar(c.name)
        for c in columns
        if c.name not in used
        and c.kind in ("status", "text", "number")
        and name_words(c.name) & _PASSTHROUGH_WORDS
        and not name_words(c.name) & _PERSON_WORDS
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
        kind = status_class(value)
        if kind in ("pass", "fail", "finished"):
            keep.append(value)
        elif kind == "unfinished":
            left_out.append(value)
        else:
            unknown.append(value)
    if not keep or not (left_out or unknown):
        return ["filters: []  # rows to leave out on purpose: {column: …, in: [finished statuses]}"]
    listed = yaml_listed(keep)
    lines = ["filters:  # rows outside the list are skipped on purpose (not errors)"]
    lines.append(f"  - {{column: {yaml_scalar(status.name)}, in: [{listed}]}}")
    if left_out:
        lines.append(f"  # skipped as unfinished: {yaml_listed(left_out)}")
    if unknown:
        also = yaml_listed(unknown)
        lines.append(f"  # TODO: also skipped, add them if they are finished: {also}")
    return lines


def _entry(key: str, column: ColumnProfile, options: dict[str, str | None]) -> str:
    parts = [f"column: {yaml_scalar(column.name)}"]
    parts += [f"{name}: {yaml_scalar(v)}" for name, v in options.items() if v is not None]
    return f"  {key}: {{{', '.join(parts)}}}  # {_said(column)}"


def _said(column: ColumnProfile) -> str:
    """The comment after a chosen column: what was seen, and a TODO when unsure."""
    text = f"{column.kind}, {column.blank_rate:.0%} blank"
    if column.errors:
        text += f", {column.errors} row(s) the converter rejects"
    if column.note:
        text += f"; TODO: {column.note}"
    return text
