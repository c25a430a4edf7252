"""payloads.jsonl of a dry run: one line per would_send row, streamed as it is made (DESIGN §8)."""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.output.run_folder import open_private
from transforms.jsontext import joined, json_string, quoted_parts
from transforms.string_buffers import offsets_and_data


def payload_lines(
    account: pa.Array,
    user: pa.Array,
    body: pa.Array,
    key: pa.Array,
    source_file: str,
    source_row: pa.Array,
) -> pa.Array:
    """``{"account_id":…,"user_id":…,"body":{…},"key":…,"source_file":…,"source_row":N}\\n``."""
    file_json = json_string(pa.array([source_file], pa.string()))[0].as_py()
    return joined(  # one pass: text that needs no escapes is not copied twice
        '{"account_id":',
        *quoted_parts(account),
        ',"user_id":',
        *quoted_parts(user),
        ',"body":',
        body,
        ',"key":',
        *quoted_parts(key),
        f',"source_file":{file_json},"source_row":',
        pc.cast(source_row, pa.string()),
        "}\n",
    )


class PayloadWriter:
    """Appends payload lines to payloads.jsonl without building Python objects per row.

    The bytes go out on a writer thread (a 10 M-row dry run writes ~3 GB, and the page cache
    makes a writer wait once it is full), at most ``_QUEUED`` chunks behind; a write that failed
    raises from the next ``write`` or from ``close``.
    """

    _QUEUED = 1

    def __init__(self, folder: Path) -> None:
        self.path = folder / "payloads.jsonl"
        self.rows = 0
        self._file: IO[bytes] = open_private(self.path)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="payloads")
        self._queued: deque[Future[None]] = deque()

    def write(self, lines: pa.Array, keep: npt.NDArray[np.bool_] | None = None) -> None:
        """Write the lines (each already ends in a newline; null lines are none) straight from
        the Arrow buffer; with ``keep``, only the rows it marks (runs of kept rows, one write
        each)."""
        if isinstance(lines, pa.ChunkedArray):
            lines = lines.combine_chunks()
        keep = np.ones(len(lines), np.bool_) if keep is None else np.asarray(keep, np.bool_)
        has_line = np.asarray(lines.is_valid().to_numpy(zero_copy_only=False), np.bool_)
        written = keep & has_line
        if not written.any():
            return
        offsets, data = offsets_and_data(lines)
        # Runs of rows to write; a row without a line has no bytes, so only a row whose line is
        # left out ends a run.
        edges = np.flatnonzero(np.diff(keep | ~has_line, prepend=False, append=False))
        runs = [
            data[offsets[start] : offsets[end]]  # views: the Arrow buffer stays alive with them
            for start, end in zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True)
        ]
        self._queued.append(self._writer.submit(self._write_runs, runs))
        while len(self._queued) > self._QUEUED:
            self._queued.popleft().result()
        self.rows += int(np.count_nonzero(written))

    def _write_runs(self, runs: list[npt.NDArray[np.uint8]]) -> None:
        for run in runs:
            self._file.write(run.data)

    def close(self) -> None:
        """Wait for the queued writes, then flush and close the file (the first write that
        failed raises, once the file is closed)."""
        failure: BaseException | None = None
        while self._queued:
            try:
                self._queued.popleft().result()
            except BaseException as exc:  # raised below, once the file is closed
                failure = failure or exc
        self._writer.shutdown(wait=True)
        self._file.close()
        if failure is not None:
            raise failure
