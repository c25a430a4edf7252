"""The DTO fields of every row: each mapped field converted to its body member, with its problems."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from transforms.converted import Converted
from transforms.durations import to_iso_durations
from transforms.jsontext import (
    json_member,
    json_number,
    json_string,
    member,
    optional_object,
)
from transforms.mapping import Column, Duration, Fields, MappingSpec, Passthrough, Result, Score
from transforms.results import map_results
from transforms.scores import to_scores
from transforms.text import clean_text
from transforms.timestamps import to_utc_millis
from transforms.validation.problems import Problem
from transforms.validation.source_columns import (
    field_raw,
    field_raw_uncleaned,
    field_text,
    field_text_distinct,
    whole_column,
)

DEPRECATED = ("content_id", "content_external_reference", "external_id")
_STRING_FIELDS = ("external_reference", *DEPRECATED)  # sent as given, after every other field


Cleaning = Callable[[pa.Array], pa.Array]


def _as_is(values: pa.Array) -> pa.Array:
    return values


@dataclass(frozen=True)
class FieldPart:
    """One field's body member on every row and, for a converted field, its problems."""

    member: pa.Array
    problem: Problem | None = None


def completed_at_of(table: pa.Table, spec: MappingSpec, now: datetime) -> Converted | None:
    """completed_at as UTC ISO text with its problems; None where the mapping has no such field."""
    column = spec.fields.completed_at
    if column is None:
        return None
    raw = field_raw(table, column, table.num_rows)
    return to_utc_millis(raw, column.format, spec.source.timezone, now)


def string_fields(table: pa.Table, fields: Fields) -> dict[str, pa.Array]:
    """The mapped plain string fields (external_reference and the deprecated ids), in body order."""
    columns = {name: getattr(fields, name) for name in _STRING_FIELDS}
    return {
        name: field_text(table, column, table.num_rows)
        for name, column in columns.items()
        if column is not None
    }


def converted_part(name: str, converted: Converted) -> FieldPart:
    """The member and problems of a field whose converter formats its text itself."""
    return FieldPart(
        json_member(name, converted.values, plain=True),
        Problem(name, converted.codes, converted.messages),
    )


def learning_object_id_part(table: pa.Table, column: Column | None) -> FieldPart | None:
    """``learning_object_id`` as given."""
    if column is None:
        return None
    return FieldPart(json_member("learning_object_id", field_text(table, column, table.num_rows)))


def per_distinct(
    raw: pa.Array, build: Callable[[pa.Array], FieldPart], clean: Cleaning = _as_is
) -> FieldPart:
    """``build`` over the ``clean``ed values, once per distinct value when the column has at most
    half as many as rows (durations, scores, statuses, departments: a 65,536-row chunk of
    minutes has ~1,200), its member and problem spread back with ``take``; else over every row.
    ``build`` must give a null member and no problem for a null value; ``clean`` must work value
    by value (then it too runs once per distinct value)."""
    try:
        encoded = pc.dictionary_encode(raw)
    except pa.ArrowNotImplementedError:  # a type Arrow cannot dictionary-encode
        return build(clean(raw))
    if 2 * len(encoded.dictionary) > len(raw):  # mostly distinct: the spreading costs more
        return build(clean(raw))
    part, indices = build(clean(encoded.dictionary)), encoded.indices
    problem = part.problem
    if problem is not None:
        fine = problem.codes.null_count == len(problem.codes)
        codes, messages = (
            (pa.nulls(len(indices), pa.string()),) * 2
            if fine
            else (problem.codes.take(indices), problem.messages.take(indices))
        )
        problem = Problem(problem.field, codes, messages)
    return FieldPart(part.member.take(indices), problem)


def time_spent_part(table: pa.Table, column: Duration | None) -> FieldPart | None:
    """``time_spent`` as an ISO 8601 duration."""
    if column is None:
        return None
    raw, clean = field_raw_uncleaned(table, column, table.num_rows)
    unit = column.unit
    return per_distinct(
        raw, lambda v: converted_part("time_spent", to_iso_durations(v, unit)), clean
    )


def result_part(table: pa.Table, column: Result | None) -> FieldPart | None:
    """``result``: the mapped value and the source's own status text."""
    if column is None:
        return None
    distinct, indices = field_text_distinct(table, column, table.num_rows)
    return FieldPart(pc.take(_result_member(distinct, column.map), indices))


def score_part(table: pa.Table, column: Score | None) -> FieldPart | None:
    """``score``: the percentage and the raw value as given."""
    if column is None:
        return None
    scale = column.scale
    raw, clean = field_raw_uncleaned(table, column, table.num_rows)
    return per_distinct(raw, lambda values: _score(values, scale), clean)


def _score(raw: pa.Array, scale: str) -> FieldPart:
    """The score member and problems of every value of ``raw``."""
    scores = to_scores(raw, scale)
    score = pc.binary_join_element_wise(
        ',"score":{"percentage":',
        json_number(scores.values),
        ',"raw_value":',
        json_string(raw),
        "}",
        "",
    )
    return FieldPart(score, Problem("score", scores.codes, scores.messages))


def passthrough_part(table: pa.Table, passthrough: Passthrough | None) -> FieldPart | None:
    """``passthrough``: an object of the listed source columns (null when all are blank)."""
    if passthrough is None:
        return None
    names = passthrough.columns
    if len(names) == 1:  # one column: the member is built once per distinct value
        raw = whole_column(table, names[0])
        return per_distinct(raw, lambda values: _passthrough_object(names, [values]), clean_text)
    return _passthrough_object(names, [clean_text(whole_column(table, name)) for name in names])


def _passthrough_object(names: list[str], values: list[pa.Array]) -> FieldPart:
    """The passthrough member from each listed column's cleaned values."""
    extra = [_passthrough_member(name, column) for name, column in zip(names, values, strict=True)]
    return FieldPart(member("passthrough", optional_object(extra, len(values[0]))))


def _passthrough_member(name: str, values: pa.Array) -> pa.Array:
    """Passthrough values keep JSON numbers and booleans; everything else is a string."""
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        return member(name, json_number(values))
    if pa.types.is_boolean(values.type):
        return member(name, pc.if_else(values, "true", "false"))
    return json_member(name, values)


def _result_member(statuses: pa.Array, mapping: Mapping[str, str]) -> pa.Array:
    """``,"result":{"value":…,"source_value":…}`` of each (distinct) status."""
    return pc.binary_join_element_wise(
        ',"result":{"value":',
        json_string(map_results(statuses, mapping)),
        ',"source_value":',
        json_string(statuses),
        "}",
        "",
    )
