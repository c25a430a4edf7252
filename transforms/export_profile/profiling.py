"""Profile a sampled export column by column: blanks, distinct values, samples, guessed kind.

Kinds are guessed from column names and values, and every guess a converter can check is checked
with that converter (``to_utc_millis``, ``to_iso_durations``, ``to_scores``): among the candidate
formats, units or scales the one with the fewest row errors wins. Pure: whole Arrow columns in.
"""

from __future__ import annotations

import json
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

from transforms.export_profile.column_names import name_words
from transforms.export_profile.kinds import guess_kind
from transforms.export_profile.profiles import ColumnProfile, Profile
from transforms.text import clean_text

_SAMPLES = 5


def profile_table(
    table: pa.Table,
    *,
    fmt: Literal["csv", "parquet"] = "csv",
    delimiter: str | None = None,
    encoding: str | None = None,
) -> Profile:
    """Profile every column of ``table`` (a sample of the export)."""
    columns = tuple(profile_column(name, table.column(name)) for name in table.column_names)
    return Profile(columns, table.num_rows, fmt, delimiter, encoding)


def profile_column(name: str, values: pa.Array | pa.ChunkedArray) -> ColumnProfile:
    """Blank count, distinct count, samples and the guessed kind of one column."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if pa.types.is_nested(values.type):
        return _nested_profile(name, values)
    if pa.types.is_large_string(values.type):
        values = values.cast(pa.string())
    present = clean_text(values).drop_null()
    counts = pc.value_counts(present) if len(present) else pa.array([], pa.struct([]))
    base = {
        "name": name,
        "rows": len(values),
        "blanks": len(values) - len(present),
        "distinct": len(counts),
        "samples": tuple(_shown(v) for v in pc.unique(present)[:_SAMPLES].to_pylist()),
    }
    if not len(present):
        return ColumnProfile(kind="empty", **base)  # type: ignore[arg-type]
    guess = guess_kind(name_words(name), present, counts)
    return ColumnProfile(**base, **guess)  # type: ignore[arg-type]


def _nested_profile(name: str, values: pa.Array) -> ColumnProfile:
    """A struct, list or map column (Parquet): shown as JSON, never guessed as a field, since no
    field can read it. Arrow has no distinct-count kernel for these types: counted on the sample."""
    present = [json.dumps(v, default=str, sort_keys=True) for v in values.drop_null().to_pylist()]
    return ColumnProfile(
        name=name,
        kind="nested",
        rows=len(values),
        blanks=values.null_count,
        distinct=len(set(present)),
        samples=tuple(_shown(v) for v in dict.fromkeys(present))[:_SAMPLES],
    )


def _shown(value: object) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:39] + "…"
