"""A source that breaks off mid-file: the one malformed record at the break, and the note of it.

The rows read before the break stay rows; the break is one more record (the next record
number, every field null) whose read error says the file is truncated or corrupt, and the
batch holding it says the source is incomplete, so a nightly job tries the file again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

__all__ = ["INCOMPLETE_SOURCE", "SourceEnd", "break_piece"]

# The report warning ``incomplete_source:<file>`` names a source that broke off mid-file.
INCOMPLETE_SOURCE = "incomplete_source"


@dataclass
class SourceEnd:
    """How a source's reading ended: ``broken`` is why it broke off early, None at its end."""

    broken: str | None = None


def break_piece(
    schema: pa.Schema | Sequence[str], message: str, end: SourceEnd
) -> tuple[pa.Table, pa.Array]:
    """The record at the break (every field null, ``message`` as its read error); notes ``end``."""
    if not isinstance(schema, pa.Schema):
        schema = pa.schema([(name, pa.string()) for name in schema])
    end.broken = message
    columns = [pa.nulls(1, field.type) for field in schema]
    return pa.Table.from_arrays(columns, schema=schema), pa.array([message], pa.string())
