"""Stream a CSV source (CSV, CSV.gz) as text tables whose records can be numbered exactly.

CSV is read by pyarrow's streaming reader, every column as text. Record numbers must be exact
(DESIGN §6, §8 ``_dl_source_row``), but pyarrow drops malformed records and cannot say where they
were, and it silently accepts a quoted field left open at the end of the file. So: when pyarrow
meets a malformed record (or any parse error, or a suspect last record), the batches it already
handed out stand (they were clean), and the rest of the file is read again by Python's ``csv``
module, which is slower but sees every record. Malformed files are rare; clean ones stay fast.
Encodings whose bytes are not ASCII-compatible (UTF-16/32) always take the Python path.
A .gz source is checked whole first (``gzip_check``): both paths read only what can be trusted.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from pipelines.source.csv_exact_path import python_pieces
from pipelines.source.csv_fast_path import ArrowPass, arrow_pieces
from pipelines.source.csv_layout import CsvLayout
from pipelines.source.gzip_check import find_break
from pipelines.source.source_breaks import SourceEnd, break_piece

__all__ = ["csv_pieces"]


def csv_pieces(layout: CsvLayout, end: SourceEnd) -> Iterator[tuple[pa.Table, pa.Array | None]]:
    """Every record in order: pyarrow's clean pieces (no errors), then the exact path's rest.

    A .gz whose stream breaks is read up to the last line break it can be trusted to, then one
    record marks the break (``end`` notes it).
    """
    broken = find_break(layout.path) if layout.compressed else None
    outcome = ArrowPass()
    if layout.arrow_encoding is not None:
        for table in arrow_pieces(layout, outcome, broken):
            yield table, None
    if layout.arrow_encoding is None or outcome.incomplete:
        yield from python_pieces(layout, outcome.rows, broken)
    if broken is not None:
        yield break_piece(layout.names, broken.message, end)
