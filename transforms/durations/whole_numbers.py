"""Whole numbers in a unit of a second or more -> canonical ISO 8601, all in Arrow compute."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from transforms.converted import Converted
from transforms.durations.value_rows import CODE


def whole_numbers(values: pa.Array, seconds_per_unit: int) -> Converted:
    """Whole numbers in a unit of a second or more: exact in int64, formatted by Arrow compute."""
    seconds = pc.multiply_checked(pc.cast(values, pa.int64()), seconds_per_unit)
    negative = pc.fill_null(pc.less(seconds, 0), False)
    seconds = pc.if_else(negative, pa.scalar(None, pa.int64()), seconds)
    hours = pc.divide(seconds, 3600)
    minutes = pc.divide(pc.subtract(seconds, pc.multiply(hours, 3600)), 60)
    rest = pc.subtract(seconds, pc.add(pc.multiply(hours, 3600), pc.multiply(minutes, 60)))

    def part(amount: pa.Array, designator: str) -> pa.Array:
        text = pc.binary_join_element_wise(pc.cast(amount, pa.string()), designator, "")
        return pc.if_else(pc.equal(amount, 0), "", text)

    iso = pc.binary_join_element_wise(
        "PT", part(hours, "H"), part(minutes, "M"), part(rest, "S"), ""
    )
    iso = pc.if_else(pc.equal(seconds, 0), "PT0S", iso)
    null = pa.scalar(None, pa.string())
    if not pc.any(negative).as_py():
        return Converted(
            iso, pa.nulls(len(values), pa.string()), pa.nulls(len(values), pa.string())
        )
    message = pc.binary_join_element_wise(
        "negative duration '", pc.cast(values, pa.string()), "'", ""
    )
    return Converted(iso, pc.if_else(negative, CODE, null), pc.if_else(negative, message, null))
