"""Stream a CSV source (CSV, CSV.gz) as text tables whose records can be numbered exactly.

CSV is read by pyarrow's streaming reader, every column as text. Record numbers must be exact
(DESIGN §6, §8 ``_dl_source_row``), but pyarrow drops malformed records and cannot say where they
were, and it silently accepts a quoted field left open at the end of the file. So: when pyarrow
meets a malformed record (or any parse error, or a suspect last record), the batches it already
handed out stand (they were clean), and the rest of the file is read again by Python's ``csv``
module, which is slower but sees every record. Malformed files are rare; clean ones stay fast.
Encodings whose bytes are not ASCII-compatible (UTF-16/32) always take the Python path.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from pipelines.source.csv_exact_path import python_pieces
from pipelines.source.csv_fast_path import ArrowPass, arrow_pieces
from pipelines.source.csv_layout import CsvLayout

__all__ = ["csv_pieces"]


def csv_pieces(layout: CsvLayout) -> Iterator[tuple[pa.Table, pa.Array | None]]:
    """Every record in order: pyarrow's clean pieces (no errors), then the exact path's rest."""
    skip = 0
    if layout.arrow_encoding is not None:
        outcome = ArrowPass()
        for table in arrow_pieces(layout, outcome):
            yield table, None
        if not outcome.incomplete:
            return
        skip = outcome.rows
    yield from python_pieces(layout, skip)
