"""distinct_text: cleaning and taking a part once per distinct value gives every row what the
row-by-row path (``part_ids``) gives."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given
from hypothesis import strategies as st

from transforms.mapping import ColumnPart
from transforms.validation.source_columns import distinct_text, part_ids

_WORDS = st.sampled_from(
    ["Passed", " passed ", "N/A", "null", "", "  ", "ID-7", "id-7 ", "\u00a0x"]
)
_PARTS = st.sampled_from(
    [ColumnPart(), ColumnPart(prefix="ID-"), ColumnPart(extract=r"(\d+)"), ColumnPart(prefix="i")]
)


@given(values=st.lists(st.one_of(st.none(), _WORDS), max_size=30), part=_PARTS)
def test_same_as_row_by_row(values: list[str | None], part: ColumnPart) -> None:
    table = pa.table({"status": pa.array(values, pa.string())})
    distinct, indices = distinct_text(table, "status", part)
    expected = part_ids(table, "status", part)[0]
    assert pc.take(distinct, indices).to_pylist() == expected.to_pylist()


def test_typed_column_takes_the_row_path() -> None:
    table = pa.table({"code": pa.array([1.0, 2.5, None, 1.0])})
    distinct, indices = distinct_text(table, "code", ColumnPart())
    assert pc.take(distinct, indices).to_pylist() == ["1", "2.5", None, "1"]
