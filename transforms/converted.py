"""The result of converting one whole column: values plus a per-row error (code, message)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc


@dataclass(frozen=True)
class Converted:
    """A converted column.

    ``values`` is null where the input was blank (field omitted) or invalid; ``codes`` and
    ``messages`` are null where the row converted, else a §6 error code and a human message.
    All three have the input's length.
    """

    values: pa.Array
    codes: pa.Array
    messages: pa.Array

    @classmethod
    def from_lists(
        cls,
        values: Sequence[object],
        codes: Sequence[str | None],
        messages: Sequence[str | None],
        value_type: pa.DataType,
    ) -> Converted:
        """Build from Python lists (used after converting the distinct values of a column)."""
        return cls(
            pa.array(values, type=value_type),
            pa.array(codes, type=pa.string()),
            pa.array(messages, type=pa.string()),
        )

    @property
    def invalid(self) -> pa.Array:
        """Boolean mask of rows that failed conversion."""
        return pc.is_valid(self.codes)
