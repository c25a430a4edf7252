"""null_where shares the values' buffers and gives what ``if_else(mask, null, values)`` gives."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given
from hypothesis import strategies as st

from transforms.validation.problems import null_where

_TEXT = st.lists(st.one_of(st.none(), st.text(max_size=5)), max_size=40)
_MASK = st.lists(st.one_of(st.none(), st.booleans()), max_size=40)


@given(values=_TEXT, mask=_MASK, start=st.integers(0, 3))
def test_same_as_if_else(values: list[str | None], mask: list[bool | None], start: int) -> None:
    n = min(len(values), len(mask))
    text = pa.array(values[:n], pa.string())
    flags = pa.array(mask[:n], pa.bool_())
    for column, where in ((text, flags), (text.slice(min(start, n)), flags.slice(min(start, n)))):
        expected = pc.if_else(where, pa.scalar(None, pa.string()), column)
        got = null_where(where, column)
        got.validate(full=True)
        assert got.to_pylist() == expected.to_pylist()
        assert got.null_count == expected.null_count


def test_numbers_and_shared_data() -> None:
    values = pa.array([1, None, 3, 4], pa.int64())
    got = null_where(pa.array([False, False, True, None]), values)
    assert got.to_pylist() == [1, None, None, None]
    body = pa.array(['{"a":1}', '{"b":2}'])
    nulled = null_where(pa.array([True, False]), body)
    assert nulled.buffers()[2].address == body.buffers()[2].address  # not copied
    assert nulled.to_pylist() == [None, '{"b":2}']
