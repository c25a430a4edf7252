"""Dead-letter rows of a delivering run's rejected requests: the original columns plus the
server's reason (code, message, status, attempts)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import orjson
import pyarrow as pa

from pipelines.api.completions import Result
from pipelines.core.outcomes import Stage
from pipelines.output.deadletter import with_reasons
from pipelines.run.chunks import Chunk

__all__ = ["SentRow", "failed_table", "kept_rows"]


@dataclass
class SentRow:
    """A row handed to the sink and not yet settled: where it came from, for the dead-letter."""

    chunk: Chunk
    index: int  # row position inside the chunk's table
    body_hash: str
    account: str  # the account it goes to (counted per account in the report)


def kept_rows(chunk: Chunk, positions: pa.Array) -> Chunk:
    """The chunk cut down to the rows at ``positions``, copied: rows waiting to be sent keep
    their own source columns in memory, not their whole chunks (at a real rate limit a night's
    few new rows would otherwise hold every chunk of the export until they are sent)."""
    batch = chunk.batch
    cut = replace(
        batch,
        table=batch.table.take(positions),
        rows=batch.rows.take(positions),
        read_errors=batch.read_errors.take(positions),
    )
    return Chunk(chunk.source, cut, chunk.first_ordinal)


def _errors_json(result: Result) -> str:
    error = {
        "code": result.code,
        "field": None,
        "message": result.message,
        "http_status": result.http_status,
    }
    return orjson.dumps([error]).decode()


def failed_table(failed: list[tuple[SentRow, Result]]) -> pa.Table:
    """Dead-letter rows for delivery failures: original columns plus the server's reason."""
    tables = [
        with_reasons(
            pending.chunk.batch.table.slice(pending.index, 1),
            source=pending.chunk.source,
            rows=pending.chunk.batch.rows.slice(pending.index, 1),
            stage=Stage.DELIVER,
            code=result.code,
            message=result.message,
            errors=pa.array([_errors_json(result)]),
            http_status=result.http_status,
            attempts=result.attempts,
        )
        for pending, result in failed
    ]
    return pa.concat_tables(tables, promote_options="permissive")
