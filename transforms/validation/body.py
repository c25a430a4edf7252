"""A row's request body: every mapped field's member in DTO order, and the conversion problems."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

from transforms.extraction import blank_message
from transforms.jsontext import json_member, json_object, member_parts
from transforms.mapping import MappingSpec
from transforms.validation.dto_fields import (
    FieldPart,
    completed_at_of,
    converted_part,
    learning_object_id_part,
    passthrough_part,
    result_part,
    score_part,
    string_fields,
    time_spent_part,
)
from transforms.validation.problems import Problem, required_id
from transforms.validation.source_columns import field_ids


@dataclass(frozen=True)
class Body:
    """Every row's body JSON, the values the key is made of, and the fields' problems."""

    json: pa.Array  # null members left out; not yet nulled for rows that are not valid
    learning_object: pa.Array  # the learning object's external reference
    completed_at: pa.Array  # UTC ISO text, null where not mapped, blank or invalid
    problems: list[Problem]  # in DESIGN §6 order
    strings: dict[str, pa.Array]  # the plain string fields mapped, by name


def body_of(table: pa.Table, spec: MappingSpec, now: datetime) -> Body:
    """Convert every mapped DTO field of every row and assemble the body JSON."""
    n = table.num_rows
    fields = spec.fields
    lo_ref, lo_not_finite = field_ids(table, fields.learning_object_external_reference, n)
    completed = completed_at_of(table, spec, now)
    strings = string_fields(table, fields)
    optional = [
        learning_object_id_part(table, fields.learning_object_id),
        None if completed is None else converted_part("completed_at", completed),
        time_spent_part(table, fields.time_spent),
        result_part(table, fields.result),
        score_part(table, fields.score),
        passthrough_part(table, fields.passthrough),
        *(FieldPart(json_member(name, values)) for name, values in strings.items()),
    ]
    parts = [part for part in optional if part is not None]
    first_member = member_parts("learning_object_external_reference", lo_ref)
    reference = fields.learning_object_external_reference
    blank_reference = required_id(
        lo_ref,
        lo_not_finite,
        "learning_object_external_reference",
        "missing_required",
        blank_message("learning_object_external_reference", reference.prefix, reference.extract),
    )
    return Body(
        json=json_object(first_member, [part.member for part in parts]),
        learning_object=lo_ref,
        completed_at=pa.nulls(n, pa.string()) if completed is None else completed.values,
        problems=[*blank_reference, *(part.problem for part in parts if part.problem is not None)],
        strings=strings,
    )
