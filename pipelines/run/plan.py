"""The plan of a run: the mapping, the sources and the dead-letter schema, fixed before any row is read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from pipelines.output.account_counts import AccountCounts
from pipelines.output.deadletter import union_schema
from pipelines.source.headers import read_header
from pipelines.source.parquet_reader import parquet_schema
from pipelines.source.source_files import detect_format, expand_sources
from transforms.errors import MappingError
from transforms.mapping import MappingSpec, check_columns, parse_mapping

# Rows per chunk: with two chunks checked ahead, three are in memory at once (~1.7 KB a row at
# the peak of a check); smaller chunks cost more Python per row than they save.
DEFAULT_BATCH_ROWS = 65_536


@dataclass(frozen=True)
class RunPlan:
    """Everything fixed before the first row is read: mapping, sources, dead-letter schema."""

    spec: MappingSpec
    sources: list[Path]
    deadletter_schema: pa.Schema
    account_id: str | None
    batch_rows: int = DEFAULT_BATCH_ROWS
    replay: bool = False  # sources are dead-letter files: rows keep their original file and row
    mapping_path: Path | None = None  # the mapping file, named in the run's log

    def account_counts(self) -> AccountCounts | None:
        """Empty per-account counts when the mapping reads the account from a column, else None."""
        account = self.spec.account
        return AccountCounts() if account is not None and account.column is not None else None


def load_mapping(path: Path, env: Mapping[str, str]) -> MappingSpec:
    """Read and parse a mapping file (MappingError on any problem)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MappingError("", f"cannot read mapping file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        bad = exc.object[exc.start : exc.start + 1].hex()
        raise MappingError(
            "",
            f"mapping file {path} is not UTF-8: byte {exc.start} (0x{bad}) cannot be decoded; "
            f"save the file as UTF-8",
        ) from None
    return parse_mapping(text, env)


def plan_run(
    patterns: list[str],
    spec: MappingSpec,
    account_id: str | None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> RunPlan:
    """Expand the sources and check the mapping against every header before any row is read."""
    sources = expand_sources(patterns)
    schemas = []
    for path in sources:
        header = _read_header(path, spec)
        schema = _schema(path, header, spec)
        check_columns(spec, header, path.name, dict(zip(header, schema.types, strict=True)))
        schemas.append(schema)
    if spec.account is None and not account_id:
        raise MappingError(
            "account", "no account: set STACKONE_ACCOUNT_ID or add account: to the mapping"
        )
    return RunPlan(spec, sources, union_schema(schemas), account_id, batch_rows)


def _read_header(path: Path, spec: MappingSpec) -> list[str]:
    source = spec.source
    return read_header(
        path, fmt=source.format, delimiter=source.delimiter, encoding=source.encoding
    )


def _schema(path: Path, header: list[str], spec: MappingSpec) -> pa.Schema:
    if detect_format(path, spec.source.format) == "parquet":
        return parquet_schema(path)
    return pa.schema([(name, pa.string()) for name in header])
