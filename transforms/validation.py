"""Row validation of a whole batch: per row either a body and key, or why not (DESIGN §5, §6)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from transforms.durations import to_iso_durations
from transforms.jsontext import join_present, json_number, json_object, json_string, member
from transforms.keys import idempotency_keys
from transforms.mapping import Column, MappingSpec
from transforms.results import map_results
from transforms.scores import to_scores
from transforms.text import clean_text, match_key, match_key_of
from transforms.timestamps import to_utc_millis

VALID, SKIPPED, INVALID = "valid", "skipped", "invalid"
DEPRECATED = ("content_id", "content_external_reference", "external_id")
_STRING_FIELDS = ("learning_object_id", "external_reference", *DEPRECATED)


@dataclass(frozen=True)
class CheckedRows:
    """Per-row verdicts for one batch; every array has the batch's length."""

    status: pa.Array  # valid | skipped | invalid
    account: pa.Array
    user: pa.Array  # user id, or the email / external reference to look up
    key: pa.Array  # idempotency key (null unless valid)
    body: pa.Array  # request body JSON (null unless valid)
    error_code: pa.Array
    error_field: pa.Array
    error_message: pa.Array
    errors: pa.Array  # JSON list of every problem of the row (null unless invalid)
    deprecated_uses: Counter[str]


@dataclass(frozen=True)
class _Problem:
    field: str
    codes: pa.Array
    messages: pa.Array


def check_rows(
    table: pa.Table,
    read_errors: pa.Array,
    spec: MappingSpec,
    *,
    account_id: str | None,
    now: datetime,
) -> CheckedRows:
    """Convert and validate every row of ``table`` (the source's columns) against ``spec``."""
    n = table.num_rows
    fields = spec.fields
    problems: list[_Problem] = [
        _Problem("_row", read_errors, read_errors),
    ]

    account = _account_column(table, spec, account_id, n)
    problems.append(_required(account, "account", "invalid_account", "account id is blank"))
    user = _text(table, spec.user.column, n)
    if spec.user.resolve_by == "email":
        user = pc.utf8_lower(user)
        bad_email = pc.invert(
            pc.fill_null(pc.match_substring_regex(user, r"^[^@\s]+@[^@\s]+$"), True)
        )
        problems.append(
            _Problem(
                "user",
                _where(bad_email, "invalid_user"),
                _message(bad_email, user, "is not an email"),
            )
        )
    problems.append(_required(user, "user", "invalid_user", "user is blank"))

    members: list[pa.Array] = []
    lo_ref = _field_text(table, fields.learning_object_external_reference, n)
    problems.append(
        _required(
            lo_ref,
            "learning_object_external_reference",
            "missing_required",
            "learning_object_external_reference is blank",
        )
    )
    members.append(member("learning_object_external_reference", json_string(lo_ref)))
    if fields.learning_object_id is not None:
        members.append(
            member(
                "learning_object_id", json_string(_field_text(table, fields.learning_object_id, n))
            )
        )

    completed_at = pa.nulls(n, pa.string())
    if fields.completed_at is not None:
        converted = to_utc_millis(
            _field_raw(table, fields.completed_at, n),
            fields.completed_at.format,
            spec.source.timezone,
            now,
        )
        completed_at = converted.values
        problems.append(_Problem("completed_at", converted.codes, converted.messages))
        members.append(member("completed_at", json_string(completed_at)))

    if fields.time_spent is not None:
        durations = to_iso_durations(
            _field_raw(table, fields.time_spent, n), fields.time_spent.unit
        )
        problems.append(_Problem("time_spent", durations.codes, durations.messages))
        members.append(member("time_spent", json_string(durations.values)))

    if fields.result is not None:
        status_text = _field_text(table, fields.result, n)
        mapped = map_results(status_text, fields.result.map)
        result = json_object(
            [
                member("value", json_string(mapped)),
                member("source_value", json_string(status_text)),
            ],
            n,
        )
        members.append(member("result", _null_where(pc.is_null(status_text), result)))

    if fields.score is not None:
        raw = _field_raw(table, fields.score, n)
        scores = to_scores(raw, fields.score.scale)
        problems.append(_Problem("score", scores.codes, scores.messages))
        score = json_object(
            [
                member("percentage", json_number(scores.values)),
                member("raw_value", json_string(pc.cast(raw, pa.string()))),
            ],
            n,
        )
        members.append(member("score", _null_where(pc.is_null(scores.values), score)))

    if fields.passthrough is not None:
        extra = [
            member(column, _json_value(clean_text(_column(table, column))))
            for column in fields.passthrough.columns
        ]
        passthrough = json_object(extra, n)
        members.append(member("passthrough", _null_where(pc.equal(passthrough, "{}"), passthrough)))

    deprecated: Counter[str] = Counter()
    string_values: dict[str, pa.Array] = {}
    for name in _STRING_FIELDS[1:]:
        spec_field = getattr(fields, name)
        if spec_field is not None:
            string_values[name] = _field_text(table, spec_field, n)
            members.append(member(name, json_string(string_values[name])))

    first = _first_problem(problems)
    malformed = pc.is_valid(read_errors)
    skipped = pc.and_not(_filtered_out(table, spec, n), malformed)
    invalid = pc.and_not(pc.is_valid(first[0]), skipped)
    status = pc.if_else(invalid, INVALID, pc.if_else(skipped, SKIPPED, VALID))
    valid = pc.equal(status, VALID)

    for name in DEPRECATED:
        if name in string_values:
            deprecated[name] = pc.sum(pc.and_(valid, pc.is_valid(string_values[name]))).as_py() or 0

    user_part = (
        user
        if spec.user.resolve_by is None
        else pc.binary_join_element_wise(f"{spec.user.resolve_by}:", user, "")
    )
    keys = idempotency_keys(_null_where(pc.invert(valid), account), user_part, lo_ref, completed_at)
    body = _null_where(pc.invert(valid), json_object(members, n))
    errors = _errors_json(problems, malformed)
    return CheckedRows(
        status=status,
        account=account,
        user=user,
        key=keys,
        body=body,
        error_code=_null_where(pc.invert(invalid), first[0]),
        error_field=_null_where(pc.invert(invalid), first[1]),
        error_message=_null_where(pc.invert(invalid), first[2]),
        errors=_null_where(pc.invert(invalid), errors),
        deprecated_uses=deprecated,
    )


def _column(table: pa.Table, name: str) -> pa.Array:
    column = table.column(name)
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _text(table: pa.Table, name: str, n: int) -> pa.Array:
    """A column as cleaned text: ids from typed Parquet columns leave as strings."""
    values = _column(table, name)
    if not pa.types.is_string(values.type):
        values = pc.cast(values, pa.string())
    return clean_text(values)


def _field_raw(table: pa.Table, spec: Column, n: int) -> pa.Array:
    """A field's column cleaned but keeping its Parquet type (converters parse their own types)."""
    if spec.column is None:
        return clean_text(pa.repeat(spec.value, n))
    return clean_text(_column(table, spec.column))


def _field_text(table: pa.Table, spec: Column, n: int) -> pa.Array:
    if spec.column is None:
        return clean_text(pa.repeat(spec.value, n))
    return _text(table, spec.column, n)


def _account_column(table: pa.Table, spec: MappingSpec, account_id: str | None, n: int) -> pa.Array:
    if spec.account is not None and spec.account.column is not None:
        return _text(table, spec.account.column, n)
    value = spec.account.id if spec.account is not None else account_id
    return clean_text(pa.repeat(value, n).cast(pa.string()))


def _json_value(values: pa.Array) -> pa.Array:
    """Passthrough values keep JSON numbers and booleans; everything else is a string."""
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        return json_number(values)
    if pa.types.is_boolean(values.type):
        return pc.if_else(values, "true", "false")
    return json_string(values)


def _where(mask: pa.Array, code: str) -> pa.Array:
    return pc.if_else(mask, pa.scalar(code, pa.string()), pa.scalar(None, pa.string()))


def _message(mask: pa.Array, values: pa.Array, text: str) -> pa.Array:
    quoted = pc.binary_join_element_wise("'", values, f"' {text}", "")
    return pc.if_else(mask, quoted, pa.scalar(None, pa.string()))


def _required(values: pa.Array, field: str, code: str, message: str) -> _Problem:
    missing = pc.is_null(values)
    return _Problem(field, _where(missing, code), _where(missing, message))


def _null_where(mask: pa.Array, values: pa.Array) -> pa.Array:
    return pc.if_else(mask, pa.scalar(None, values.type), values)


def _first_problem(problems: list[_Problem]) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Code, field and message of each row's first problem in DESIGN §6 order."""
    codes = [
        _where(pc.is_valid(p.codes), "malformed_row") if p.field == "_row" else p.codes
        for p in problems
    ]
    # "" stands for "no field" (a malformed record) so that coalesce stops at the first problem.
    fields = [
        pc.if_else(
            pc.is_valid(c), "" if p.field == "_row" else p.field, pa.scalar(None, pa.string())
        )
        for p, c in zip(problems, codes, strict=True)
    ]
    field = pc.coalesce(*fields)
    return (
        pc.coalesce(*codes),
        pc.if_else(pc.equal(field, ""), pa.scalar(None, pa.string()), field),
        pc.coalesce(*[p.messages for p in problems]),
    )


def _errors_json(problems: list[_Problem], malformed: pa.Array) -> pa.Array:
    """JSON list of every problem per row; a malformed record lists only that."""
    n = len(malformed)
    items = []
    for problem in problems:
        code = "malformed_row" if problem.field == "_row" else None
        codes = _where(pc.is_valid(problem.codes), code) if code else problem.codes
        field_json = "null" if problem.field == "_row" else f'"{problem.field}"'
        item = pc.binary_join_element_wise(
            '{"code":',
            json_string(codes),
            f',"field":{field_json},"message":',
            json_string(problem.messages),
            "}",
            "",
        )
        items.append(item)
    joined = join_present(items, ",", n)
    listed = pc.binary_join_element_wise("[", joined, "]", "")
    only_read = pc.binary_join_element_wise("[", items[0], "]", "")
    return pc.if_else(malformed, only_read, listed) if n else listed


def _filtered_out(table: pa.Table, spec: MappingSpec, n: int) -> pa.Array:
    """Rows some filter leaves out (a blank value is outside every list)."""
    out = pa.repeat(False, n)
    for rule in spec.filters:
        allowed = pa.array(sorted({match_key_of(v) for v in rule.in_}), pa.string())
        keys = match_key(_text(table, rule.column, n))
        inside = pc.fill_null(pc.is_in(keys, value_set=allowed), False)
        out = pc.or_(out, pc.invert(inside))
    return out
