"""payloads.jsonl of a dry run: one line per would_send row, streamed as it is made (DESIGN §8)."""

from __future__ import annotations

from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.output.run_folder import open_private
from transforms.jsontext import json_string, quoted_parts


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
    return pc.binary_join_element_wise(  # one pass: text that needs no escapes is not copied
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
        "",
    )


class PayloadWriter:
    """Appends payload lines to payloads.jsonl without building Python objects per row."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "payloads.jsonl"
        self.rows = 0
        self._file: IO[bytes] = open_private(self.path)

    def write(self, lines: pa.Array) -> None:
        """Write lines (each already ends in a newline) straight from the Arrow buffer."""
        if len(lines) == 0:
            return
        if isinstance(lines, pa.ChunkedArray):
            lines = lines.combine_chunks()
        if lines.null_count:
            raise ValueError("payload lines must not be null")
        offsets = lines.buffers()[1]
        data = lines.buffers()[2]
        width = 8 if pa.types.is_large_string(lines.type) else 4
        first = int.from_bytes(offsets[lines.offset * width : (lines.offset + 1) * width], "little")
        end = len(lines) + lines.offset
        last = int.from_bytes(offsets[end * width : (end + 1) * width], "little")
        self._file.write(memoryview(data)[first:last])
        self.rows += len(lines)

    def close(self) -> None:
        """Flush and close the file."""
        self._file.close()
