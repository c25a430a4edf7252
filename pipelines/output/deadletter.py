"""Dead-letter files: every invalid or failed row with its original columns and why (DESIGN §8)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TypeAlias

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipelines.core.object_urls import source_label
from pipelines.output.run_folder import open_private

DL_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("_dl_stage", pa.string()),
    ("_dl_error_code", pa.string()),
    ("_dl_error_field", pa.string()),
    ("_dl_error_message", pa.string()),
    ("_dl_errors", pa.string()),
    ("_dl_http_status", pa.int32()),
    ("_dl_attempts", pa.int32()),
    ("_dl_source_file", pa.string()),
    ("_dl_source_row", pa.int64()),
)
_FORMULA_START = r"^[=+\-@\t\r]"


def union_schema(schemas: Sequence[pa.Schema]) -> pa.Schema:
    """Every source column once, in first-seen order; a column typed differently becomes text."""
    fields: dict[str, pa.DataType] = {}
    for schema in schemas:
        for field in schema:
            if field.name.startswith("_dl_"):
                continue
            known = fields.get(field.name)
            fields[field.name] = field.type if known in (None, field.type) else pa.string()
    return pa.schema(list(fields.items()) + list(DL_COLUMNS))


def neutralise_formulas(values: pa.Array) -> pa.Array:
    """Prefix ``'`` to text a spreadsheet would run as a formula (=, +, -, @, tab, CR)."""
    text = as_text(values)
    risky = pc.fill_null(pc.match_substring_regex(text, _FORMULA_START), False)
    return pc.if_else(risky, pc.binary_join_element_wise("'", text, ""), text)


def as_text(values: pa.Array) -> pa.Array:
    """A column as text for the CSV: nested values (struct, list, map) as JSON, others as Arrow
    casts them, or as Python prints them where Arrow cannot (e.g. binary that is not UTF-8)."""
    if pa.types.is_string(values.type):
        return values
    kind = values.type.value_type if pa.types.is_dictionary(values.type) else values.type
    if not pa.types.is_nested(kind):
        try:
            return pc.cast(values, pa.string())
        except pa.ArrowException:
            pass
    return pa.array([_json_text(v, kind) for v in values.to_pylist()], pa.string())


def _json_text(value: object, kind: pa.DataType) -> str | None:
    """One value as JSON text (nested) or its Python text; None stays None."""
    if value is None:
        return None
    if pa.types.is_nested(kind):
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    return str(value)


Value: TypeAlias = (  # one value for every row, a list, or an Arrow column
    str | int | list[str] | list[str | None] | list[int | None] | pa.Array | pa.ChunkedArray | None
)


def with_reasons(
    source_rows: pa.Table,
    *,
    source: Path,
    rows: pa.Array | pa.ChunkedArray,
    stage: Value,
    code: Value,
    message: Value,
    field: Value = None,
    errors: pa.Array | None = None,
    http_status: Value = None,
    attempts: Value = None,
) -> pa.Table:
    """The source columns of dead-lettered rows plus every ``_dl_*`` column.

    Each reason is one value for all rows, a list or an array; ``errors`` (the JSON list of all
    problems) defaults to the one problem given by code, field and message.
    """
    n = source_rows.num_rows

    def column(value: Value, type_: pa.DataType) -> pa.Array | pa.ChunkedArray:
        if isinstance(value, pa.Array | pa.ChunkedArray):
            return value
        return pa.array(value if isinstance(value, list) else [value] * n, type_)

    codes = column(code, pa.string())
    fields = column(field, pa.string())
    messages = column(message, pa.string())
    if errors is None:
        errors = pa.array(
            [
                orjson.dumps([{"code": c, "field": f, "message": m}]).decode()
                for c, f, m in zip(
                    codes.to_pylist(), fields.to_pylist(), messages.to_pylist(), strict=True
                )
            ],
            pa.string(),
        )
    extra = {
        "_dl_stage": column(stage, pa.string()),
        "_dl_error_code": codes,
        "_dl_error_field": fields,
        "_dl_error_message": messages,
        "_dl_errors": errors,
        "_dl_http_status": column(http_status, pa.int32()),
        "_dl_attempts": column(attempts, pa.int32()),
        "_dl_source_file": column(source_label(source), pa.string()),
        "_dl_source_row": rows,
    }
    table = source_rows
    for name, values in extra.items():
        table = table.append_column(name, values)
    return table


class DeadLetterWriter:
    """Streams dead-letter rows to deadletter.parquet and deadletter.csv; both always written."""

    def __init__(self, folder: Path, schema: pa.Schema) -> None:
        self.schema = schema
        self.parquet_path = folder / "deadletter.parquet"
        self.csv_path = folder / "deadletter.csv"
        self.rows = 0
        self._parquet_file: IO[bytes] = open_private(self.parquet_path)
        self._csv_file: IO[bytes] = open_private(self.csv_path)
        self._parquet = pq.ParquetWriter(self._parquet_file, schema)
        # header cells are neutralised like data cells: a column named =cmd is written '=cmd
        self._csv_names = neutralise_formulas(pa.array(schema.names, pa.string())).to_pylist()
        csv_schema = pa.schema([(name, pa.string()) for name in self._csv_names])
        self._csv = pacsv.CSVWriter(self._csv_file, csv_schema)

    def write(self, rows: pa.Table, landed: Callable[[], None] | None = None) -> None:
        """Append rows: source columns (any subset) plus the ``_dl_*`` columns.

        ``landed`` (the caller counting them) is called once they are in deadletter.parquet, the
        primary file replay reads, before the CSV copy is written: a run that crashes writing
        the copy (disk full) still counts them as dead-lettered, and one that crashes writing
        the Parquet file never does (they stay ``pending``).
        """
        if rows.num_rows == 0:
            if landed is not None:
                landed()
            return
        table = self._conform(rows)
        self._parquet.write_table(table)
        self.rows += rows.num_rows  # rows in the primary file
        if landed is not None:
            landed()
        self._csv.write_table(
            pa.table(
                [neutralise_formulas(c.combine_chunks()) for c in table.columns],
                names=self._csv_names,
            )
        )

    def paths(self) -> dict[str, str]:
        """Where the two files are, for report.json."""
        return {"csv": str(self.csv_path), "parquet": str(self.parquet_path)}

    def close(self) -> None:
        """Finish both files (an empty run still leaves two valid files with headers); each is
        closed even if finishing another fails (a full disk), and that error raised."""
        with contextlib.ExitStack() as closing:  # called last to first
            closing.callback(self._csv_file.close)
            closing.callback(self._parquet_file.close)
            closing.callback(self._csv.close)
            closing.callback(self._parquet.close)

    def _conform(self, rows: pa.Table) -> pa.Table:
        columns = []
        for field in self.schema:
            if field.name in rows.column_names:
                column = rows.column(field.name)
                columns.append(column if column.type == field.type else _cast(column, field.type))
            else:
                columns.append(pa.nulls(rows.num_rows, field.type))
        return pa.Table.from_arrays(columns, schema=self.schema)


def _cast(column: pa.ChunkedArray, kind: pa.DataType) -> pa.Array | pa.ChunkedArray:
    """A column in the dead-letter schema's type; one widened to text takes nested values as JSON."""
    if pa.types.is_string(kind):
        return as_text(column.combine_chunks())
    return pc.cast(column, kind)
