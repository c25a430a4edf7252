"""JSON text assembled over Arrow columns parses back to the same values."""

from __future__ import annotations

import orjson
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.jsontext import json_object, json_string, member


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
    """Null members are left out of the object; an all-null row is an empty object."""
    a = json_string(pa.array(["x", None, None]))
    b = json_string(pa.array(["y", "z", None]))
    objects = json_object([member("a", a), member("b", b)], 3).to_pylist()
    assert [orjson.loads(o) for o in objects] == [{"a": "x", "b": "y"}, {"b": "z"}, {}]
