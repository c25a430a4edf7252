"""Hypothesis strategies for Parquet exports: typed columns (text, ints, floats with NaN/inf,
naive and zoned timestamps, dates, dictionaries), nested columns beside them, sometimes mapped."""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import strategies as st

from tests.pipelines.run.generated_exports import (
    CELL,
    INSTANTS,
    ROLES,
    STRPTIME,
    Export,
    mapping_yaml,
    shapes,
    text_cells,
)

FLOATS = st.sampled_from(
    (0.0, 1.5, 7.5, 12345.0, 87.5, 0.87, 150.0, -1.0, 1e20, float("nan"), float("inf"), -float("inf"))
)
INTS = st.sampled_from((0, 1, 7, 30, 100, 12345, -5, 1_709_648_530, 1_709_648_530_123, 2**62))
TEXT_KINDS = ("string", "large_string", "dictionary")
KINDS: dict[str, tuple[str, ...]] = {
    "user": (*TEXT_KINDS, "int64", "float64"),
    "course": ("string", "int64", "float64"),
    "date": ("string", "string", "ts_naive", "ts_tz", "date32", "int64", "float64"),
    "minutes": ("string", "int64", "float64"),
    "status": ("string", "dictionary"),
    "score": ("string", "int64", "float64"),
    "tenant": ("string", "int64", "float64"),
    "extra": ("struct", "list", "bool", "string", "float64", "int64"),
}
NESTED = ("struct", "list")
TYPES = {
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "struct": pa.struct([("a", pa.int64()), ("b", pa.string())]),
    "list": pa.list_(pa.string()),
}
NUMERIC_DATE_FORMATS: tuple[str | None, ...] = ("epoch_s", "epoch_ms", "excel_serial", None, STRPTIME[3])


@st.composite
def values(draw: st.DrawFn, kind: str, role: str, n: int, fmt: str | None) -> pa.Array:
    """``n`` values of one column of type ``kind`` (None anywhere, the last row too)."""
    nulls = draw(st.sets(st.integers(0, n - 1), max_size=n // 3 + 1))
    strategy: st.SearchStrategy[Any]
    if kind in TEXT_KINDS:
        strategy = text_cells(role, fmt, draw(st.booleans()))
    elif kind == "int64":
        strategy = INTS
    elif kind == "float64":
        strategy = FLOATS
    elif kind == "bool":
        strategy = st.booleans()
    elif kind == "struct":
        strategy = st.fixed_dictionaries({"a": st.integers(0, 9), "b": CELL})
    elif kind == "list":
        strategy = st.lists(CELL, max_size=2)
    else:  # timestamps and dates
        strategy = INSTANTS
    items = [None if i in nulls else draw(strategy) for i in range(n)]
    return _typed(draw, kind, items)


def _typed(draw: st.DrawFn, kind: str, items: list[Any]) -> pa.Array:
    """The Arrow array of ``items`` typed as ``kind`` says."""
    if kind == "large_string":
        return pa.array(items, pa.large_string())
    if kind == "dictionary":
        return pa.array(items, pa.string()).dictionary_encode()
    if kind in TYPES:
        return pa.array(items, TYPES[kind])
    if kind == "date32":
        return pa.array([None if v is None else v.date() for v in items], pa.date32())
    if kind.startswith("ts_"):
        unit = draw(st.sampled_from(("s", "ms", "us", "ns")))
        zone = draw(st.sampled_from(("UTC", "Europe/Berlin", "+05:30"))) if kind == "ts_tz" else None
        micros = pa.array(items, pa.timestamp("us"))
        return micros.cast(pa.timestamp(unit), safe=False).cast(pa.timestamp(unit, tz=zone))
    return pa.array(items, pa.string())


@st.composite
def parquet_exports(draw: st.DrawFn) -> Export:
    """A Parquet export of 1 to 40 rows in one or more row groups, and its mapping (exit 2 when a
    nested column or a number read as a date without an epoch format is mapped on purpose)."""
    shape = draw(shapes())
    count = draw(st.integers(1, 40))
    kinds = {role: draw(st.sampled_from(KINDS[role])) for role in ROLES}
    if shape.tenant:
        kinds[shape.tenant] = draw(st.sampled_from(KINDS["tenant"]))
    kinds |= {name: draw(st.sampled_from(KINDS["extra"])) for name in shape.extras}
    fmt = shape.fmt
    numeric_date = kinds["date"] in ("int64", "float64")
    if numeric_date:
        fmt = draw(st.sampled_from(NUMERIC_DATE_FORMATS))
    columns = {
        shape.names.get(role, role): draw(values(kind, role, count, fmt))
        for role, kind in kinds.items()
    }
    order = draw(st.permutations(list(columns)))
    table = pa.table({name: columns[name] for name in order})
    nested = [name for name in shape.extras if kinds[name] in NESTED]
    plain = tuple(name for name in (shape.names["status"], *shape.extras) if name not in nested)
    extra: dict[str, Any] = {}
    if nested and draw(st.booleans()):
        column = draw(st.sampled_from(nested))
        field = draw(st.sampled_from(("learning_object_id", "passthrough", "score")))
        extra[field] = {"columns": [column]} if field == "passthrough" else {"column": column}
    date = {"column": shape.names["date"]} | ({"format": fmt} if fmt else {})
    mapping = draw(mapping_yaml(shape, plain, extra | {"completed_at": date}))
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=draw(st.integers(1, 40)))
    wrong = bool(extra) or (numeric_date and fmt not in ("epoch_s", "epoch_ms", "excel_serial"))
    return Export("export.parquet", buffer.getvalue(), mapping, count, wrong)
