"""JSON text built over whole Arrow columns: strings escaped, objects joined, nulls omitted.

Every Arrow string kernel costs 0.1-0.3 µs a row here, so the fewer passes the better: columns
with few distinct values (statuses, courses, departments, durations) are escaped and prefixed once
per distinct value and spread back with ``take``; an object is one join whose optional members
carry their own leading comma (a null member becomes "").
"""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from transforms.string_buffers import any_control_or

_SPECIAL = r'[\x00-\x1f"\\]'
_SAMPLE = 2048


def json_string(values: pa.Array) -> pa.Array:
    """Each non-null value as a JSON string literal (quotes included); nulls stay null."""
    return _per_distinct(_as_text(values), _quote)


def json_member(
    name: str, values: pa.Array, *, first: bool = False, plain: bool = False
) -> pa.Array:
    """``,"name":"value"`` per row (no comma when ``first``), null where the value is null.

    ``plain`` says the values need no escaping (text lms-sync formatted itself).
    """
    prefix = f'"{name}":' if first else f',"{name}":'
    if plain:
        return pc.binary_join_element_wise(prefix + '"', _as_text(values), '"', "")
    return _per_distinct(_as_text(values), lambda text: _quote(text, prefix))


def member(name: str, value_json: pa.Array, *, first: bool = False) -> pa.Array:
    """``,"name":<json>`` for values that are JSON text already; null where the value is null."""
    prefix = f'"{name}":' if first else f',"{name}":'
    return pc.binary_join_element_wise(prefix, value_json, "")


def json_number(values: pa.Array) -> pa.Array:
    """Each non-null number as JSON number text; NaN and ±inf, which JSON cannot hold, are null."""
    if pa.types.is_floating(values.type):
        values = pc.if_else(pc.is_finite(values), values, pa.scalar(None, values.type))
    return pc.cast(values, pa.string())


def json_object(first: pa.Array | list[pa.Array | str], rest: list[pa.Array]) -> pa.Array:
    """``{first,rest…}`` per row: ``first`` (a member, or its parts: see ``member_parts``) has no
    leading comma and is never null where the object matters; null members of ``rest`` are left
    out."""
    head = first if isinstance(first, list) else [first]
    return joined("{", *head, *rest, "}", null_handling="replace", null_replacement="")


def member_parts(name: str, values: pa.Array) -> list[pa.Array | str]:
    """``"name":"value"`` as parts for a join (see ``quoted_parts``): no member column is built."""
    return [f'"{name}":', *quoted_parts(values)]


def optional_object(members: list[pa.Array], length: int) -> pa.Array:
    """``{…}`` from members that each carry a leading comma and may all be null (then null)."""
    if not members:
        return pa.nulls(length, pa.string())
    joined = pc.binary_join_element_wise(*members, "", null_handling="replace", null_replacement="")
    inner = pc.utf8_slice_codeunits(joined, 1)
    obj = pc.binary_join_element_wise("{", inner, "}", "")
    return pc.if_else(pc.equal(joined, ""), pa.scalar(None, pa.string()), obj)


def joined(*parts: pa.Array | str, **options: str) -> pa.Array:
    """Every row's parts joined (null where one is null, unless ``options`` say otherwise);
    adjacent literals are merged first, as each part costs the join a step per row (a payload
    line: 11 parts, not 16, ~35% faster)."""
    merged: list[pa.Array | str] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    return pc.binary_join_element_wise(*merged, "", **options)


def may_need_escapes(text: pa.Array) -> bool:
    """Whether any byte of a string column's values is a quote, a backslash or a control
    character: one numpy pass over the data buffer, much cheaper than a regex per value."""
    return any_control_or(text, b'"\\')


def quoted_parts(values: pa.Array) -> list[pa.Array | str]:
    """Pieces that ``binary_join_element_wise`` turns into each value as a JSON string literal:
    the bare text between two quotes when nothing needs escaping (no extra pass), else
    ``json_string``."""
    text = _as_text(values)
    return ['"', text, '"'] if not may_need_escapes(text) else [json_string(text)]


def _as_text(values: pa.Array) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return values if pa.types.is_string(values.type) else pc.cast(values, pa.string())


def few_distinct(values: pa.Array) -> bool:
    """Whether a long column has few distinct values (judged on its first rows): then work done
    once per distinct value and spread back with ``take`` is cheaper than a pass over all rows."""
    if len(values) <= _SAMPLE:
        return False
    return bool(pc.count_distinct(values.slice(0, _SAMPLE)).as_py() < _SAMPLE // 4)


def _per_distinct(text: pa.Array, apply: Callable[[pa.Array], pa.Array]) -> pa.Array:
    """``apply`` over the distinct values when there are few of them, else over the column."""
    if few_distinct(text):
        encoded = pc.dictionary_encode(text)
        return pc.take(apply(encoded.dictionary), encoded.indices)
    return apply(text)


def _quote(text: pa.Array, prefix: str = "") -> pa.Array:
    """``prefix"text"`` with JSON escapes; null stays null."""
    quoted = pc.binary_join_element_wise(prefix + '"', text, '"', "")
    if not may_need_escapes(text):
        return quoted
    special = pc.fill_null(pc.match_substring_regex(text, _SPECIAL), False)
    if not pc.any(special).as_py():
        return quoted
    # Quotes, backslashes, control characters: orjson writes those rows one by one.
    fixed = [prefix + orjson.dumps(v).decode() for v in pc.filter(text, special).to_pylist()]
    return pc.replace_with_mask(quoted, special, pa.array(fixed, pa.string()))
