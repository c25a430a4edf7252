"""How a row's problems are reported: the first one in DESIGN §6 order, and a JSON list of all."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from transforms.jsontext import json_string
from transforms.validation.problems import Problem, where

_ROW = "_row"  # the field of a malformed source record: reported as malformed_row, no field


def first_problem(problems: list[Problem]) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Code, field and message of each row's first problem in DESIGN §6 order."""
    n = len(problems[0].codes)
    problems = [p for p in problems if p.codes.null_count < n]  # fields without a problem
    if not problems:
        nulls = pa.nulls(n, pa.string())
        return nulls, nulls, nulls
    codes = [
        where(pc.is_valid(p.codes), "malformed_row") if p.field == _ROW else p.codes
        for p in problems
    ]
    # "" stands for "no field" (a malformed record) so that coalesce stops at the first problem.
    fields = [
        pc.if_else(pc.is_valid(c), "" if p.field == _ROW else p.field, pa.scalar(None, pa.string()))
        for p, c in zip(problems, codes, strict=True)
    ]
    field = pc.coalesce(*fields)
    return (
        pc.coalesce(*codes),
        pc.if_else(pc.equal(field, ""), pa.scalar(None, pa.string()), field),
        pc.coalesce(*[p.messages for p in problems]),
    )


def errors_json(problems: list[Problem], malformed: pa.Array, invalid: pa.Array) -> pa.Array:
    """JSON list of every problem of each invalid row (a malformed record lists only that).

    Built on the invalid rows alone (usually a few per cent) and spread back: null elsewhere.
    ``problems[0]`` is the malformed-record one.
    """
    n = len(malformed)
    if not pc.any(invalid).as_py():
        return pa.nulls(n, pa.string())
    items = [_error_items(problem, invalid) for problem in problems]
    joined = pc.binary_join_element_wise(*items, "", null_handling="replace", null_replacement="")
    listed = pc.binary_join_element_wise("[", pc.utf8_slice_codeunits(joined, 1), "]", "")
    only_read = pc.binary_join_element_wise("[", pc.utf8_slice_codeunits(items[0], 1), "]", "")
    subset = pc.if_else(pc.filter(malformed, invalid), only_read, listed)
    return pc.replace_with_mask(pa.nulls(n, pa.string()), invalid, subset)


def _error_items(problem: Problem, invalid: pa.Array) -> pa.Array:
    """``,{"code":…,"field":…,"message":…}`` of one field on the invalid rows, null if fine."""
    codes = pc.filter(problem.codes, invalid)
    if problem.field == _ROW:
        codes = where(pc.is_valid(codes), "malformed_row")
    field_json = "null" if problem.field == _ROW else f'"{problem.field}"'
    return pc.binary_join_element_wise(
        ',{"code":',
        json_string(codes),
        f',"field":{field_json},"message":',
        json_string(pc.filter(problem.messages, invalid)),
        "}",
        "",
    )
