"""payloads.jsonl of a dry run: one line per would_send row, streamed as it is made (DESIGN §8)."""

from __future__ import annotations

import contextlib
import errno
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.output.run_folder import open_private
from transforms.jsontext import joined, json_string, quoted_parts
from transforms.string_buffers import Offsets, offsets_and_data


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


# Told how many of a write's lines are whole in payloads.jsonl, once that is known.
OnWritten = Callable[[int], None]
_IOV_MAX = 1024  # buffers per writev call (Linux's limit)


@dataclass(frozen=True)
class _Landed:
    """What one write left in the file: its whole lines, and the error that cut it short."""

    lines: int
    error: Exception | None = None


class PayloadWriter:
    """Appends payload lines to payloads.jsonl without building Python objects per row.

    The bytes go out on a writer thread (a 10 M-row dry run writes ~3 GB, and the page cache
    makes a writer wait once it is full), at most ``_QUEUED`` chunks behind; a write that failed
    raises from the next ``write`` or from ``close``. The file only ever ends in whole lines:
    a line a failed write cut short is cut off, and nothing is written after it, so each write
    can say how many of its lines are in the file (``on_written``).
    """

    _QUEUED = 1

    def __init__(self, folder: Path) -> None:
        self.path = folder / "payloads.jsonl"
        self.rows = 0  # lines whole in the file, of the writes collected so far
        self._file: IO[bytes] = open_private(self.path, buffering=0)  # raw: no bytes held back
        self._size = 0  # bytes in the file (writer thread only)
        self._broken = False  # a write failed: nothing more is written (writer thread only)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="payloads")
        self._queued: deque[tuple[Future[_Landed], OnWritten | None]] = deque()

    def write(
        self,
        lines: pa.Array,
        keep: npt.NDArray[np.bool_] | None = None,
        on_written: OnWritten | None = None,
    ) -> None:
        """Write the lines (each already ends in a newline; null lines are none) straight from
        the Arrow buffer; with ``keep``, only the rows it marks (runs of kept rows, gathered by
        ``writev``). ``on_written`` is called, in this thread, with how many of them are whole in the
        file once the writer thread is done with them (all of them unless a write failed)."""
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
        task = self._writer.submit(self._write_runs, runs, np.diff(offsets)[written])
        self._queued.append((task, on_written))
        while len(self._queued) > self._QUEUED:
            self._collect()

    def _collect(self) -> None:
        """Wait for the oldest queued write, tell its caller how many of its lines are whole in
        the file, and raise the error that stopped it, if any."""
        task, on_written = self._queued.popleft()
        landed = task.result()
        self.rows += landed.lines
        if on_written is not None:
            on_written(landed.lines)
        if landed.error is not None:
            raise landed.error

    def _write_runs(self, runs: list[npt.NDArray[np.uint8]], lengths: Offsets) -> _Landed:
        """Write one chunk's runs (``lengths``: its lines' sizes); on the writer thread."""
        if self._broken:  # an earlier write failed: the file stays as it left it
            return _Landed(0)
        start = self._size
        try:
            self._write_all([run for run in runs if len(run)])
        except Exception as exc:  # reported with the lines that made it, from _collect
            self._broken = True
            ends = np.cumsum(lengths)
            whole = int(np.searchsorted(ends, self._size - start, side="right"))
            size = start + (int(ends[whole - 1]) if whole else 0)
            with contextlib.suppress(OSError):  # a cut line goes: the file ends in whole lines
                os.ftruncate(self._file.fileno(), size)
            return _Landed(whole, exc)
        return _Landed(len(lengths))

    def _write_all(self, buffers: list[npt.NDArray[np.uint8]]) -> None:
        """Write the buffers in order, ``_IOV_MAX`` to a call, resuming short writes; ``_size``
        follows every byte written."""
        first = 0
        while first < len(buffers):
            # numpy arrays are buffers; its stubs do not say so (a memoryview per run costs more)
            done = os.writev(self._file.fileno(), buffers[first : first + _IOV_MAX])  # type: ignore[arg-type]
            if done == 0:
                raise OSError(errno.EIO, "payloads.jsonl: a write wrote nothing")
            self._size += done
            while first < len(buffers) and done >= len(buffers[first]):
                done -= len(buffers[first])
                first += 1
            if done:
                buffers[first] = buffers[first][done:]

    def close(self) -> None:
        """Wait for the queued writes, then close the file (the first write that failed raises,
        once the file is closed)."""
        failure: BaseException | None = None
        while self._queued:
            try:
                self._collect()
            except BaseException as exc:  # raised below, once the file is closed
                failure = failure or exc
        self._writer.shutdown(wait=True)
        self._file.close()
        if failure is not None:
            raise failure
