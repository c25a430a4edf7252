"""Row validation of a whole batch: per row either a body and key, or why not (DESIGN §5, §6)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from transforms.durations import to_iso_durations
from transforms.jsontext import (
    json_member,
    json_number,
    json_object,
    json_string,
    member,
    optional_object,
)
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
    first_member = json_member("learning_object_external_reference", lo_ref, first=True)
    if fields.learning_object_id is not None:
        lo_id = _field_text(table, fields.learning_object_id, n)
        members.append(json_member("learning_object_id", lo_id))

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
        members.append(json_member("completed_at", completed_at, plain=True))

    if fields.time_spent is not None:
        durations = to_iso_durations(
            _field_raw(table, fields.time_spent, n), fields.time_spent.unit
        )
        problems.append(_Problem("time_spent", durations.codes, durations.messages))
        members.append(json_member("time_spent", durations.values, plain=True))

    if fields.result is not None:
        status_text = _field_text(table, fields.result, n)
        members.append(_result_member(status_text, fields.result.map))

    if fields.score is not None:
        raw = _field_raw(table, fields.score, n)
        scores = to_scores(raw, fields.score.scale)
        problems.append(_Problem("score", scores.codes, scores.messages))
        members.append(
            pc.binary_join_element_wise(
                ',"score":{"percentage":',
                json_number(scores.values),
                ',"raw_value":',
                json_string(raw),
                "}",
                "",
            )
        )

    if fields.passthrough is not None:
        extra = [
            _passthrough_member(column, clean_text(_column(table, column)))
            for column in fields.passthrough.columns
        ]
        members.append(member("passthrough", optional_object(extra, n)))

    deprecated: Counter[str] = Counter()
    string_values: dict[str, pa.Array] = {}
    for name in _STRING_FIELDS[1:]:
        spec_field = getattr(fields, name)
        if spec_field is not None:
            string_values[name] = _field_text(table, spec_field, n)
            members.append(json_member(name, string_values[name]))

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
    body = _null_where(pc.invert(valid), json_object(first_member, members))
    errors = _errors_json(problems, malformed, invalid)
    return CheckedRows(
        status=status,
        account=account,
        user=user,
        key=keys,
        body=body,
        error_code=_null_where(pc.invert(invalid), first[0]),
        error_field=_null_where(pc.invert(invalid), first[1]),
        error_message=_null_where(pc.invert(invalid), first[2]),
        errors=errors,
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


def _passthrough_member(name: str, values: pa.Array) -> pa.Array:
    """Passthrough values keep JSON numbers and booleans; everything else is a string."""
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        return member(name, json_number(values))
    if pa.types.is_boolean(values.type):
        return member(name, pc.if_else(values, "true", "false"))
    return json_member(name, values)


def _result_member(status_text: pa.Array, mapping: Mapping[str, str]) -> pa.Array:
    """``,"result":{"value":…,"source_value":…}`` built once per distinct status."""
    encoded = pc.dictionary_encode(status_text)
    statuses = encoded.dictionary
    result = pc.binary_join_element_wise(
        ',"result":{"value":',
        json_string(map_results(statuses, mapping)),
        ',"source_value":',
        json_string(statuses),
        "}",
        "",
    )
    return pc.take(result, encoded.indices)


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


def _errors_json(problems: list[_Problem], malformed: pa.Array, invalid: pa.Array) -> pa.Array:
    """JSON list of every problem of each invalid row (a malformed record lists only that).

    Built on the invalid rows alone (usually a few per cent) and spread back: null elsewhere.
    """
    n = len(malformed)
    if not pc.any(invalid).as_py():
        return pa.nulls(n, pa.string())
    items = []
    for problem in problems:
        codes = pc.filter(problem.codes, invalid)
        if problem.field == "_row":
            codes = _where(pc.is_valid(codes), "malformed_row")
        field_json = "null" if problem.field == "_row" else f'"{problem.field}"'
        items.append(
            pc.binary_join_element_wise(
                ',{"code":',
                json_string(codes),
                f',"field":{field_json},"message":',
                json_string(pc.filter(problem.messages, invalid)),
                "}",
                "",
            )
        )
    joined = pc.binary_join_element_wise(*items, "", null_handling="replace", null_replacement="")
    listed = pc.binary_join_element_wise("[", pc.utf8_slice_codeunits(joined, 1), "]", "")
    only_read = pc.binary_join_element_wise("[", pc.utf8_slice_codeunits(items[0], 1), "]", "")
    subset = pc.if_else(pc.filter(malformed, invalid), only_read, listed)
    return pc.replace_with_mask(pa.nulls(n, pa.string()), invalid, subset)


def _filtered_out(table: pa.Table, spec: MappingSpec, n: int) -> pa.Array:
    """Rows some filter leaves out (a blank value is outside every list)."""
    out = pa.repeat(False, n)
    for rule in spec.filters:
        allowed = pa.array(sorted({match_key_of(v) for v in rule.in_}), pa.string())
        keys = match_key(_text(table, rule.column, n))
        inside = pc.fill_null(pc.is_in(keys, value_set=allowed), False)
        out = pc.or_(out, pc.invert(inside))
    return out
