"""Chunks: every source streamed in record batches, numbered across the run, and checked."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from pipelines.run.plan import RunPlan
from pipelines.source.batches import SourceBatch, iter_batches
from pipelines.source.deadletter_source import replay_batches
from transforms.keys import warm_kernel
from transforms.validation import CheckedRows, check_rows

# From this much input, loading the vectorised key hasher pays off: loading numba and the kernel
# costs ~3.4 s of CPU and ~105 MB, the kernel then saves ~0.75 µs a row over hashlib (a 1 M-row
# dry run: 8.6 s and 620 MB with it, 5.8 s and 490 MB without). ~4 M rows of a lean export.
LARGE_INPUT_BYTES = 320 * 1024 * 1024


@dataclass(frozen=True)
class Chunk:
    """One batch of one source, with its position in the run."""

    source: Path
    batch: SourceBatch
    first_ordinal: int  # position of the batch's first row among all rows of the run

    @property
    def first_row(self) -> int:
        """1-based record number of the chunk's first row in its file (0: an empty chunk)."""
        rows = self.batch.rows
        return int(rows[0].as_py()) if len(rows) else 0

    @property
    def ordinals(self) -> pa.Array:
        """Run-wide position of every row (used by ``repeats: last``)."""
        start = self.first_ordinal
        return pa.array(np.arange(start, start + self.batch.table.num_rows, dtype=np.int64))


def iter_chunks(
    plan: RunPlan, on_file: Callable[[int, Path, int], None] | None = None
) -> Iterator[Chunk]:
    """Stream every source in record batches, numbering rows across the whole run;
    ``on_file(index, path, rows read before it)`` is told as each file starts."""
    if sum(path.stat().st_size for path in plan.sources) >= LARGE_INPUT_BYTES:
        # Loading the vectorised key hasher costs seconds; worth it only for big inputs.
        threading.Thread(target=warm_kernel, name="warm-key-kernel", daemon=True).start()
    ordinal = 0
    for index, path in enumerate(plan.sources):
        if on_file is not None:
            on_file(index, path, ordinal)
        for source, batch in _source_batches(path, plan):
            yield Chunk(source, batch, ordinal)
            ordinal += batch.table.num_rows


def check_chunk(chunk: Chunk, plan: RunPlan, now: datetime) -> CheckedRows:
    """Convert and validate one chunk (pure; the Prefect task of a run wraps this)."""
    return check_rows(
        chunk.batch.table, chunk.batch.read_errors, plan.spec, account_id=plan.account_id, now=now
    )


def _source_batches(path: Path, plan: RunPlan) -> Iterator[tuple[Path, SourceBatch]]:
    """The file's batches and the source they count for (replay: each row's original file)."""
    if plan.replay:
        return replay_batches(path, plan.batch_rows)
    source = plan.spec.source
    batches = iter_batches(
        path,
        fmt=source.format,
        delimiter=source.delimiter,
        encoding=source.encoding,
        batch_rows=plan.batch_rows,
    )
    return ((path, batch) for batch in batches)
