"""JSON text assembled over Arrow columns parses back to the same values."""

from __future__ import annotations

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.jsontext import (
    joined,
    json_member,
    json_object,
    json_string,
    member,
    optional_object,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text() | st.none(), max_size=30))
def test_json_string_round_trips_any_text(values: list[str | None]) -> None:
    """Every string (quotes, backslashes, control characters, unicode) is a valid JSON literal."""
    quoted = json_string(pa.array(values, pa.string())).to_pylist()
    for original, literal in zip(values, quoted, strict=True):
        assert (literal is None) == (original is None)
        if literal is not None:
            assert orjson.loads(literal) == original


def test_object_omits_null_members() -> None:
    """Null members of an object are left out; the first member carries no comma."""
    first = json_member("a", pa.array(["x", "y", "z"]), first=True)
    b = json_member("b", pa.array(["1", None, None]))
    c = member("c", pa.array(["2", "3", None]))
    objects = json_object(first, [b, c]).to_pylist()
    assert [orjson.loads(o) for o in objects] == [
        {"a": "x", "b": "1", "c": 2},
        {"a": "y", "c": 3},
        {"a": "z"},
    ]


def test_optional_object_is_null_when_every_member_is() -> None:
    """A nested object with no present member is null (the field is omitted), never ``{}``."""
    a = json_member("a", pa.array(["x", None]))
    objects = optional_object([a], 2).to_pylist()
    assert objects == ['{"a":"x"}', None]


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.sampled_from(['a"b', "plain", "back\\", "tab\t", "ü"]) | st.none(), max_size=8),
    st.integers(min_value=2100, max_value=3000),
)
def test_distinct_path_equals_row_path(pattern: list[str | None], repeat: int) -> None:
    """Low-cardinality columns (escaped once per distinct value) give the same text row for row."""
    values = (pattern or [None]) * repeat
    quoted = json_member("k", pa.array(values, pa.string())).to_pylist()
    for original, literal in zip(values, quoted, strict=True):
        assert (literal is None) == (original is None)
        if literal is not None:
            assert orjson.loads("{" + literal[1:] + "}") == {"k": original}


def test_joined_merges_literals_and_keeps_nulls() -> None:
    text = pa.array(["a", None, "c"])
    parts = ["{", '"', text, '"', ",", "x", text, "}"]
    assert joined(*parts).to_pylist() == pc.binary_join_element_wise(*parts, "").to_pylist()
    assert joined(*parts).to_pylist() == ['{"a",xa}', None, '{"c",xc}']
