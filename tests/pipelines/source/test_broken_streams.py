"""Sources that break off mid-file (issue 8): a truncated or corrupt .csv.gz, a broken Parquet file.

The rows read before the break are rows; the break itself is ONE ``malformed_row`` record (the
next record number) saying the file is truncated or corrupt, and the batch holding it says the
source is incomplete (``SourceBatch.source_break``). Nothing raises.
"""

from __future__ import annotations

import gzip
import random
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.core.errors import SourceError
from pipelines.source.batches import SourceBatch, iter_batches
from pipelines.source.headers import read_header

HEADER = "user_id,course,completed_at,minutes,comment"
BREAK_TEXT = "truncated or corrupt"


def _export(rows: int = 40_000, seed: int = 8) -> bytes:
    """A many-row CSV whose values vary enough that gzip cannot squeeze it to nothing."""
    rng = random.Random(seed)
    lines = [HEADER]
    for i in range(rows):
        lines.append(
            f"u{i:06d},C-{rng.randint(1, 9999):04d},2024-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}"
            f"T{rng.randint(10, 23)}:00:00Z,{rng.randint(1, 500)},note {rng.getrandbits(40):x}"
        )
    return ("\n".join(lines) + "\n").encode()


def _records(data: bytes) -> list[dict[str, str]]:
    """The complete records of CSV text (a cut last line is no record)."""
    lines = data.decode().split("\n")
    names = lines[0].split(",")
    return [dict(zip(names, line.split(","), strict=True)) for line in lines[1:-1]]


def _read(path: Path, **options: object) -> list[SourceBatch]:
    return list(iter_batches(path, **options))  # type: ignore[arg-type]


def _rows(batches: list[SourceBatch]) -> tuple[list[dict[str, object]], list[int], list[str | None]]:
    records: list[dict[str, object]] = []
    numbers: list[int] = []
    errors: list[str | None] = []
    for batch in batches:
        assert len(batch.rows) == len(batch.read_errors) == batch.num_rows
        records.extend(batch.table.to_pylist())
        numbers.extend(batch.rows.to_pylist())
        errors.extend(batch.read_errors.to_pylist())
    return records, numbers, errors


def _assert_one_break_at_the_end(batches: list[SourceBatch], good: list[dict[str, str]]) -> None:
    """Rows before the break as read, then one malformed record numbered next, flagged."""
    records, numbers, errors = _rows(batches)
    assert records[:-1] == good
    assert numbers == list(range(1, len(good) + 2))
    assert errors[:-1] == [None] * len(good)
    assert errors[-1] is not None and BREAK_TEXT in errors[-1]
    assert records[-1] == dict.fromkeys(records[-1])  # nothing of the cut record is kept
    assert [b.source_break for b in batches[:-1]] == [None] * (len(batches) - 1)
    assert batches[-1].source_break is not None and BREAK_TEXT in batches[-1].source_break


@pytest.mark.parametrize("cut_kb", [64, 200])
@pytest.mark.parametrize("batch_rows", [100_000, 1_000])
def test_truncated_gzip_keeps_rows_before_the_break(
    tmp_path: Path, cut_kb: int, batch_rows: int
) -> None:
    """A .csv.gz cut after 64 KB / 200 KB: every complete record before the cut, then one break."""
    data = _export()
    packed = gzip.compress(data)
    assert len(packed) > 300 * 1024
    path = tmp_path / "export.csv.gz"
    path.write_bytes(packed[: cut_kb * 1024])
    readable = zlib.decompressobj(wbits=31).decompress(packed[: cut_kb * 1024])
    good = _records(readable[: readable.rfind(b"\n") + 1])
    assert len(good) > 1_000
    _assert_one_break_at_the_end(_read(path, batch_rows=batch_rows), good)
    assert read_header(path) == HEADER.split(",")


def _flip(packed: bytes, start: int, count: int = 64) -> bytes:
    """``packed`` with ``count`` bytes from ``start`` flipped (corrupt on disk or in transit)."""
    corrupt = bytearray(packed)
    for at in range(start, start + count):
        corrupt[at] ^= 0x5A
    return bytes(corrupt)


def test_corrupt_gzip_keeps_rows_of_the_members_before_the_break(tmp_path: Path) -> None:
    """Bytes flipped in member 4 of a block-gzipped export (bgzip/pigz style, 64 KB members):
    the complete records of members 1-3 are rows, then one break; no error is raised.
    """
    data = _export()
    block = 65_280  # bgzip's block size: members end mid-line
    members = [gzip.compress(data[at : at + block]) for at in range(0, len(data), block)]
    before = sum(len(member) for member in members[:3])
    path = tmp_path / "export.csv.gz"
    path.write_bytes(_flip(b"".join(members), before + len(members[3]) // 2))
    intact = data[: 3 * block]
    good = _records(intact[: intact.rfind(b"\n") + 1])
    _assert_one_break_at_the_end(_read(path, batch_rows=1_000), good)


def test_corrupt_single_member_gzip_trusts_no_record(tmp_path: Path) -> None:
    """One gzip member with flipped bytes: deflate decodes on through the damage and only the
    member's CRC at the end tells, so no record of it can be trusted: one break at record 1.
    """
    packed = gzip.compress(_export())
    path = tmp_path / "export.csv.gz"
    path.write_bytes(_flip(packed, len(packed) // 2))
    assert read_header(path) == HEADER.split(",")  # the header is read from the first bytes
    _assert_one_break_at_the_end(_read(path), [])
    assert BREAK_TEXT in str(_read(path)[0].read_errors[0])


def test_break_after_an_earlier_malformed_record_takes_the_exact_path(tmp_path: Path) -> None:
    """A malformed record before the break (the exact path reads on): both are reported, once."""
    data = _export(5_000).replace(b"\nu000010,", b"\nu000010,extra,", 1)
    packed = gzip.compress(data)
    path = tmp_path / "export.csv.gz"
    path.write_bytes(packed[: len(packed) // 2])
    records, numbers, errors = _rows(_read(path))
    assert errors[10] is not None and "expected 5 fields, found 6" in errors[10]
    assert [n for n, e in zip(numbers, errors, strict=True) if e] == [11, len(records)]
    assert errors[-1] is not None and BREAK_TEXT in errors[-1]
    assert numbers == list(range(1, len(records) + 1))


def test_break_inside_a_quoted_multiline_field_is_one_break(tmp_path: Path) -> None:
    """A cut inside a quoted value spanning lines: the cut record is the break, not a second error."""
    rows = [f'u{i},C{i},2024-01-01,5,"line one\nline two {i}"' for i in range(3_000)]
    data = ("\n".join([HEADER, *rows]) + "\n").encode()
    packed = gzip.compress(data)
    readable = zlib.decompressobj(wbits=31).decompress(packed[: len(packed) // 2])
    cut = readable.rfind(b"line one\n") + len(b"line one\n")  # inside a quoted value
    path = tmp_path / "export.csv.gz"
    packer = zlib.compressobj(wbits=31)  # a gzip stream flushed at the cut, never ended
    path.write_bytes(packer.compress(readable[:cut]) + packer.flush(zlib.Z_SYNC_FLUSH))
    records, numbers, errors = _rows(_read(path))
    assert [e is not None for e in errors] == [False] * (len(records) - 1) + [True]
    assert errors[-1] is not None and BREAK_TEXT in errors[-1]
    assert records[-2]["comment"] == f"line one\nline two {len(records) - 2}"
    assert numbers[-1] == len(records)


def test_complete_gzip_has_no_break(tmp_path: Path) -> None:
    """A whole .csv.gz (several members too) reads to its end: no break, no read error."""
    data = _export(3_000)
    path = tmp_path / "export.csv.gz"
    path.write_bytes(gzip.compress(data[:50_000]) + gzip.compress(data[50_000:]))
    batches = _read(path, batch_rows=1_000)
    records, _, errors = _rows(batches)
    assert records == _records(data)
    assert set(errors) == {None}
    assert {b.source_break for b in batches} == {None}


def test_gzip_broken_before_the_header_ends_is_a_source_error(tmp_path: Path) -> None:
    """A .csv.gz that breaks before its header line is complete: one clear SourceError."""
    path = tmp_path / "export.csv.gz"
    path.write_bytes(gzip.compress(_export(10))[:20])
    with pytest.raises(SourceError, match=rf"export\.csv\.gz: .*{BREAK_TEXT}"):
        read_header(path)
    with pytest.raises(SourceError, match=BREAK_TEXT):
        _read(path)


def _parquet(path: Path, row_groups: int = 4, rows: int = 1_000) -> pa.Table:
    table = pa.table(
        {
            "user_id": [f"u{i:05d}" for i in range(row_groups * rows)],
            "minutes": list(range(row_groups * rows)),
        }
    )
    pq.write_table(table, path, row_group_size=rows, compression="snappy")
    return table


def test_parquet_without_footer_is_a_source_error_before_any_row(tmp_path: Path) -> None:
    """A Parquet file cut short (footer missing) is a SourceError from the header read on."""
    path = tmp_path / "export.parquet"
    _parquet(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(SourceError, match=rf"export\.parquet: .*{BREAK_TEXT}"):
        read_header(path)
    with pytest.raises(SourceError, match=BREAK_TEXT):
        _read(path)


def test_parquet_with_a_corrupt_row_group_keeps_rows_before_the_break(tmp_path: Path) -> None:
    """Row group 3 of 4 unreadable: the rows of groups 1-2, then one break record, flagged."""
    path = tmp_path / "export.parquet"
    table = _parquet(path)
    chunk = pq.ParquetFile(path).metadata.row_group(2).column(0)
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    data = bytearray(path.read_bytes())
    data[start : start + 16] = b"\xff" * 16  # the page header no longer parses
    path.write_bytes(bytes(data))
    assert read_header(path) == ["user_id", "minutes"]
    batches = _read(path, batch_rows=300)
    records, numbers, errors = _rows(batches)
    assert records[:-1] == table.slice(0, 2_000).to_pylist()
    assert records[-1] == {"user_id": None, "minutes": None}
    assert numbers == list(range(1, 2_002))
    assert errors[:-1] == [None] * 2_000
    assert errors[-1] is not None and BREAK_TEXT in errors[-1]
    assert batches[-1].source_break is not None
    assert {b.source_break for b in batches[:-1]} == {None}
