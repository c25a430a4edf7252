"""JSON text built over whole Arrow columns: strings escaped, objects joined, nulls omitted."""

from __future__ import annotations

import orjson
import pyarrow as pa
import pyarrow.compute as pc

_CONTROL = r"[\x00-\x1f]"


def json_string(values: pa.Array) -> pa.Array:
    """Each non-null value as a JSON string literal (quotes included); nulls stay null."""
    text = values if pa.types.is_string(values.type) else pc.cast(values, pa.string())
    escaped = pc.replace_substring(pc.replace_substring(text, "\\", "\\\\"), '"', '\\"')
    quoted = pc.binary_join_element_wise('"', escaped, '"', "")
    control = pc.fill_null(pc.match_substring_regex(text, _CONTROL), False)
    if not pc.any(control).as_py():
        return quoted
    # Rare: control characters need \u escapes; orjson writes those rows one by one.
    fixed = [orjson.dumps(v).decode() for v in pc.filter(text, control).to_pylist()]
    return pc.replace_with_mask(quoted, control, pa.array(fixed, pa.string()))


def json_number(values: pa.Array) -> pa.Array:
    """Each non-null number as JSON number text."""
    return pc.cast(values, pa.string())


def member(name: str, value_json: pa.Array) -> pa.Array:
    """``"name":value`` per row, null where the value is null (so the member is omitted)."""
    return pc.binary_join_element_wise(f'"{name}":', value_json, "")


def json_object(members: list[pa.Array], length: int) -> pa.Array:
    """``{…}`` per row from member columns; null members are left out."""
    return pc.binary_join_element_wise("{", join_present(members, ",", length), "}", "")


def join_present(items: list[pa.Array], separator: str, length: int) -> pa.Array:
    """Join the non-null items of each row with ``separator`` ("" where all are null).

    (pyarrow's own ``null_handling="skip"`` drops rows whose items are all null, so each item
    carries its separator in front and the first one is cut off instead.)
    """
    if not items:
        return pa.repeat("", length)
    prefixed = [pc.binary_join_element_wise(separator, item, "") for item in items]
    joined = pc.binary_join_element_wise(
        *prefixed, "", null_handling="replace", null_replacement=""
    )
    return pc.utf8_slice_codeunits(joined, len(separator))
