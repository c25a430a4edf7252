"""Tests for pipelines.source.readers: CSV/Parquet streaming with exact record numbers and row errors."""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import re
from datetime import datetime
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.core.errors import SourceError
from pipelines.source.batches import SourceBatch, iter_batches
from pipelines.source.headers import read_header
from pipelines.source.source_files import detect_format, expand_sources
from transforms.errors import LmsSyncError


def _write(path: Path, data: bytes | str, encoding: str = "utf-8") -> Path:
    path.write_bytes(data if isinstance(data, bytes) else data.encode(encoding))
    return path


def _read_all(
    path: Path, **options: object
) -> tuple[list[dict[str, object]], list[int], list[str | None]]:
    """Every record of ``path`` as (records, record numbers, read errors), over all batches."""
    records: list[dict[str, object]] = []
    numbers: list[int] = []
    errors: list[str | None] = []
    for batch in iter_batches(path, **options):  # type: ignore[arg-type]
        assert isinstance(batch, SourceBatch)
        assert len(batch.rows) == len(batch.read_errors) == batch.table.num_rows
        assert (batch.rows.type, batch.read_errors.type) == (pa.int64(), pa.string())
        records.extend(batch.table.to_pylist())
        numbers.extend(batch.rows.to_pylist())
        errors.extend(batch.read_errors.to_pylist())
    return records, numbers, errors


# --- formats and sources -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.csv", "csv"),
        ("A.CSV", "csv"),
        ("a.csv.gz", "csv"),
        ("a.tsv", "csv"),
        ("a.txt", "csv"),
        ("a.parquet", "parquet"),
        ("a.pq", "parquet"),
    ],
)
def test_detect_format_by_extension(name: str, expected: str) -> None:
    """The format follows the extension, case-insensitively; .csv.gz is CSV."""
    assert detect_format(Path(name)) == expected


def test_detect_format_explicit_wins_and_unknown_extension_lists_allowed() -> None:
    """An explicit format overrides the extension; an unknown extension names what is allowed."""
    assert detect_format(Path("export.dat"), "csv") == "csv"
    assert detect_format(Path("export.csv"), "parquet") == "parquet"
    with pytest.raises(SourceError, match=r"export\.xlsx: .*allowed: .*\.csv.*\.parquet"):
        detect_format(Path("export.xlsx"))
    with pytest.raises(SourceError, match="unknown format 'excel'"):
        detect_format(Path("export.csv"), "excel")


def test_source_error_is_terminal_exit_2_and_names_the_file() -> None:
    """SourceError sits under LmsSyncError, is not retryable, exits 2, and names the source."""
    error = SourceError(Path("/x/a.csv"), "file is empty")
    assert isinstance(error, LmsSyncError)
    assert (error.retryable, error.exit_code) == (False, 2)
    assert str(error) == "/x/a.csv: file is empty"
    assert error.source == "/x/a.csv"


def test_expand_sources_directories_globs_files_deduplicated(tmp_path: Path) -> None:
    """Directories give their export files sorted; globs expand; repeats are dropped, order kept."""
    folder = tmp_path / "exports"
    folder.mkdir()
    for name in ["b.csv", "a.parquet", "c.csv.gz", "d.pq", "notes.md", "e.tsv"]:
        (folder / name).write_text("x\n")
    (folder / "sub.csv").mkdir()  # a directory named like a file is not a source
    single = _write(tmp_path / "single.csv", "x\n")
    found = expand_sources(
        [str(single), str(folder), str(tmp_path / "exports" / "*.csv"), str(single)]
    )
    assert [p.name for p in found] == ["single.csv", "a.parquet", "b.csv", "c.csv.gz", "d.pq"]
    tsv = expand_sources([str(folder / "*.tsv")])
    assert [p.name for p in tsv] == ["e.tsv"]


def test_expand_sources_without_match_names_the_pattern(tmp_path: Path) -> None:
    """A missing file, an unmatched glob or a directory without exports is a SourceError."""
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("x")
    for pattern in [str(tmp_path / "missing.csv"), str(tmp_path / "*.parquet"), str(empty)]:
        with pytest.raises(SourceError) as caught:
            expand_sources([pattern])
        assert pattern in str(caught.value)


# --- CSV: dialect, encoding, header --------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_detected(tmp_path: Path, delimiter: str) -> None:
    """Each allowed delimiter is detected, even when values hold the other candidates."""
    rows = [["user", "course", "note"], ["007", "C-1", "a,b;c|d"], ["008", "C-2", "1,5"]]
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\n").writerows(rows)
    path = _write(tmp_path / "x.csv", buffer.getvalue())
    assert read_header(path) == ["user", "course", "note"]
    records, numbers, errors = _read_all(path)
    assert [list(r.values()) for r in records] == rows[1:]
    assert (numbers, errors) == ([1, 2], [None, None])


def test_explicit_delimiter_and_tab_alias(tmp_path: Path) -> None:
    """An explicit delimiter is used as given; 'tab' and '\\t' spelled out mean a tab."""
    path = _write(tmp_path / "x.txt", "a\tb,c\n1\t2,3\n")
    assert read_header(path, delimiter="\t") == ["a", "b,c"]
    assert read_header(path, delimiter="tab") == ["a", "b,c"]
    assert read_header(path, delimiter="\\t") == ["a", "b,c"]
    assert read_header(path, delimiter=",") == ["a\tb", "c"]
    with pytest.raises(SourceError, match="bad delimiter"):
        read_header(path, delimiter="::")


def test_utf8_bom_is_stripped_and_header_trimmed(tmp_path: Path) -> None:
    """A UTF-8 BOM does not end up in the first column name; names are trimmed."""
    path = _write(tmp_path / "bom.csv", b"\xef\xbb\xbf user_id , course \n42,C1\n")
    assert read_header(path) == ["user_id", "course"]
    records, _, _ = _read_all(path)
    assert records == [{"user_id": "42", "course": "C1"}]


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1"])
def test_single_byte_encodings_are_transcoded(tmp_path: Path, encoding: str) -> None:
    """cp1252/latin-1 bytes (Müller, ½, €) read right when the mapping names the encoding."""
    euro = "€" if encoding == "cp1252" else "¤"
    text = f"name;note\nMüller;{euro} 5 ½\nGöße;x\n"
    path = _write(tmp_path / "win.csv", text, encoding)
    records, numbers, _ = _read_all(path, encoding=encoding)
    assert records == [{"name": "Müller", "note": f"{euro} 5 ½"}, {"name": "Göße", "note": "x"}]
    assert numbers == [1, 2]


def test_invalid_utf8_in_header_sample_names_file_and_suggests_cp1252(tmp_path: Path) -> None:
    """cp1252 bytes read as UTF-8 fail before any row, naming the file, line and cp1252."""
    path = _write(tmp_path / "win.csv", "name\nMüller\n", "cp1252")
    with pytest.raises(SourceError) as caught:
        read_header(path)
    message = str(caught.value)
    assert str(path) in message and "line 2" in message and "encoding: cp1252" in message
    with pytest.raises(SourceError, match="encoding: cp1252"):
        list(iter_batches(path))


def test_invalid_utf8_past_the_sample_is_a_source_error_with_line(tmp_path: Path) -> None:
    """A bad byte beyond the first 64 KB still stops the read with the line it is on."""
    lines = [f"{i},ok" for i in range(20_000)] + ["20000,M\xfcller"]
    path = _write(tmp_path / "late.csv", "id,name\n" + "\n".join(lines) + "\n", "latin-1")
    assert read_header(path) == ["id", "name"]
    with pytest.raises(SourceError) as caught:
        list(iter_batches(path))
    assert str(path) in str(caught.value)
    assert "line 20002" in str(caught.value)


def test_unknown_encoding_is_a_source_error(tmp_path: Path) -> None:
    """An encoding Python does not know is reported, naming it."""
    path = _write(tmp_path / "x.csv", "a\n1\n")
    with pytest.raises(SourceError, match="unknown encoding 'klingon'"):
        read_header(path, encoding="klingon")


def test_utf16_export_takes_the_exact_path(tmp_path: Path) -> None:
    """UTF-16 (Excel 'Unicode text') is not ASCII-compatible yet reads right, tab-separated."""
    path = _write(tmp_path / "excel.txt", "user\tscore\r\n0042\t87,5\r\n", "utf-16")
    assert read_header(path, encoding="utf-16") == ["user", "score"]
    records, numbers, errors = _read_all(path, encoding="utf-16")
    assert (records, numbers, errors) == ([{"user": "0042", "score": "87,5"}], [1], [None])


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ("user,course\n1,C\n".encode("utf-16-le"), "NUL bytes: UTF-16 text without a byte-order"),
        (gzip.compress(b"user,course\n1,C\n"), "gzip-compressed data: name it *.csv.gz"),
        (b"PAR1\x15\x04\x15", "is a Parquet file: name it *.parquet or set `format: parquet`"),
        (b"PK\x03\x04\x14\x00\x06\x00", "ZIP archive (an Excel .xlsx workbook?)"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00", "Excel 97-2003 workbook"),
        (b"sep=;\r\nuser;course\r\n1;C\r\n", "first line is Excel's 'sep=;' hint, not the header"),
    ],
)
@pytest.mark.parametrize("encoding", ["utf-8", "cp1252"])
def test_files_that_are_not_csv_text_say_what_they_are(
    tmp_path: Path, data: bytes, fragment: str, encoding: str
) -> None:
    """A .csv that is UTF-16/32, gzip, Parquet or an Excel workbook: one line saying what it
    is and what to set, whatever 8-bit encoding the mapping names (not a decode error)."""
    path = _write(tmp_path / "export.csv", data)
    for read in (read_header, lambda p, **o: list(iter_batches(p, **o))):
        with pytest.raises(SourceError) as caught:
            read(path, encoding=encoding)
        assert str(path) in str(caught.value) and fragment in str(caught.value)


_MARKED = [
    (b"\xff\xfe" + "user,course\n1,C\n".encode("utf-16-le"), "UTF-16 byte-order mark"),
    (b"\xfe\xff" + "user,course\n1,C\n".encode("utf-16-be"), "`encoding: utf-16`"),
    (codecs.BOM_UTF32_LE + "user,course\n1,C\n".encode("utf-32-le"), "`encoding: utf-32`"),
]


@pytest.mark.parametrize(("data", "fragment"), _MARKED)
def test_a_utf16_or_utf32_byte_order_mark_is_read_as_it_says_under_utf8(
    tmp_path: Path, data: bytes, fragment: str
) -> None:
    """Under the default ``encoding: utf-8`` the mark decides (it is never UTF-8 text): Excel's
    "Unicode text" reads as it is. An 8-bit encoding named in the mapping is refused with the
    setting to change, not read as garbage."""
    path = _write(tmp_path / "export.csv", data)
    assert read_header(path) == ["user", "course"]
    assert _read_all(path)[0] == [{"user": "1", "course": "C"}]
    gzipped = _write(tmp_path / "export.csv.gz", gzip.compress(data))
    assert _read_all(gzipped)[0] == [{"user": "1", "course": "C"}]
    with pytest.raises(SourceError, match=re.escape(fragment)):
        read_header(path, encoding="cp1252")


def test_nul_bytes_past_the_header_line_stay_in_their_field(tmp_path: Path) -> None:
    """Only NUL bytes in the header line (ended by LF or a lone CR) mean UTF-16 without a mark."""
    path = _write(tmp_path / "nul.csv", b"user,course\r1,C\x00D\r")
    assert _read_all(path)[0] == [{"user": "1", "course": "C\x00D"}]


def test_utf16_with_its_bom_reads_when_the_mapping_names_it(tmp_path: Path) -> None:
    """The byte-order mark the check names is no obstacle once ``encoding: utf-16`` is set."""
    path = _write(tmp_path / "excel.csv", b"\xff\xfe" + "user,course\n1,C\n".encode("utf-16-le"))
    assert read_header(path, encoding="utf-16") == ["user", "course"]
    assert _read_all(path, encoding="utf-16")[0] == [{"user": "1", "course": "C"}]


def test_gzip_is_read_transparently(tmp_path: Path) -> None:
    """A .csv.gz reads exactly like the plain file, including the malformed-record path."""
    text = "id,course\n01,A\n02,B,extra\n03,C\n"
    plain = _write(tmp_path / "x.csv", text)
    packed = _write(tmp_path / "x.csv.gz", gzip.compress(text.encode()))
    assert read_header(packed) == ["id", "course"]
    assert _read_all(packed) == _read_all(plain)
    assert _read_all(packed)[2] == [None, "line 3: expected 2 fields, found 3", None]
    members = _write(tmp_path / "m.csv.gz", gzip.compress(b"id\n1\n") + gzip.compress(b"2\n3\n"))
    assert _read_all(members)[0] == [{"id": "1"}, {"id": "2"}, {"id": "3"}]  # concatenated gzip


def test_duplicate_and_empty_header_names_are_source_errors(tmp_path: Path) -> None:
    """Repeated (after trimming) or empty column names make the file unreadable, named."""
    repeated = _write(tmp_path / "dup.csv", "id, id ,course\n1,2,3\n")
    with pytest.raises(SourceError, match=r"dup\.csv: header repeats column names: 'id'"):
        read_header(repeated)
    empty = _write(tmp_path / "empty_name.csv", "id,,course,x\n1,2,3,4\n")
    with pytest.raises(SourceError, match=r"empty column names at position\(s\) 2$"):
        list(iter_batches(empty))
    trailing = _write(tmp_path / "trailing_empty.csv", "id,,course,\n1,2,3,4\n")
    with pytest.raises(SourceError, match=r"empty column names at position\(s\) 2$"):
        list(iter_batches(trailing))  # only a last empty name is a trailing delimiter


def test_a_delimiter_ending_the_header_line_is_an_unnamed_last_column(tmp_path: Path) -> None:
    """``id,course,`` (Cornerstone, SuccessFactors): the empty last name becomes ``unnamed_3``,
    which no mapping reads; rows with the same trailing delimiter read whole, a row without it
    is malformed like any row of the wrong width."""
    path = _write(tmp_path / "t.csv", "id,course,\n1,C-1,\n2,C-2,\n3,C-3\n")
    assert read_header(path) == ["id", "course", "unnamed_3"]
    records, numbers, errors = _read_all(path)
    assert records[:2] == [
        {"id": "1", "course": "C-1", "unnamed_3": ""},
        {"id": "2", "course": "C-2", "unnamed_3": ""},
    ]
    assert numbers == [1, 2, 3]
    assert errors == [None, None, "line 4: expected 3 fields, found 2"]


def test_empty_and_blank_files_are_source_errors(tmp_path: Path) -> None:
    """An empty file or one of blank lines has no header: SourceError naming the file."""
    empty = _write(tmp_path / "empty.csv", b"")
    with pytest.raises(SourceError, match=r"empty\.csv: file is empty"):
        read_header(empty)
    with pytest.raises(SourceError, match="file is empty"):
        list(iter_batches(empty))
    blank = _write(tmp_path / "blank.csv", "\n\r\n\n")
    with pytest.raises(SourceError, match="no header"):
        read_header(blank)


def test_header_only_file_has_zero_rows(tmp_path: Path) -> None:
    """A header without records yields no batch at all, and its header still reads."""
    path = _write(tmp_path / "h.csv", "id,course\n\n")
    assert read_header(path) == ["id", "course"]
    assert list(iter_batches(path)) == []


# --- CSV: values ---------------------------------------------------------------------------


def test_quoted_fields_keep_delimiters_quotes_and_newlines(tmp_path: Path) -> None:
    """Quoted values keep embedded delimiters, doubled quotes, LF and CRLF; one record each."""
    data = (
        'id,comment,course\r\n1,"a, b",C1\r\n2,"say ""hi""",C2\r\n'
        '3,"line one\nline two",C3\r\n4,"crlf\r\ninside",C4\r\n5,plain,C5\r\n'
    )
    path = _write(tmp_path / "q.csv", data)
    records, numbers, errors = _read_all(path)
    assert [r["comment"] for r in records] == [
        "a, b",
        'say "hi"',
        "line one\nline two",
        "crlf\r\ninside",
        "plain",
    ]
    assert [r["course"] for r in records] == ["C1", "C2", "C3", "C4", "C5"]
    assert (numbers, errors) == ([1, 2, 3, 4, 5], [None] * 5)


def test_values_are_text_leading_zeros_kept_empty_stays_empty(tmp_path: Path) -> None:
    """CSV columns are strings (no type guessing); empty and "" stay "", a missing field is null."""
    path = _write(tmp_path / "z.csv", 'id,score,date,note\n007,87.50,2024-01-02,""\n0100,,,\n')
    batch = next(iter_batches(path))
    assert all(field.type == pa.string() for field in batch.table.schema)
    assert batch.table.to_pylist() == [
        {"id": "007", "score": "87.50", "date": "2024-01-02", "note": ""},
        {"id": "0100", "score": "", "date": "", "note": ""},
    ]
    short = _write(tmp_path / "short.csv", "id,score\n007\n")
    records, _, errors = _read_all(short)
    assert records == [{"id": "007", "score": None}]
    assert errors == ["line 2: expected 2 fields, found 1"]


def test_blank_lines_are_not_records(tmp_path: Path) -> None:
    """Blank and whitespace-only lines (before the header, between, after records) are skipped."""
    path = _write(tmp_path / "b.csv", "\n\nid,course\n\n1,A\r\n\r\n   \n2,B\n\n\n")
    records, numbers, errors = _read_all(path)
    assert records == [{"id": "1", "course": "A"}, {"id": "2", "course": "B"}]
    assert (numbers, errors) == ([1, 2], [None, None])


# --- CSV: malformed records and numbering --------------------------------------------------


def test_ragged_records_get_errors_at_exact_record_numbers(tmp_path: Path) -> None:
    """Too many / too few fields become row errors at the right record; other rows stay intact."""
    data = (
        "id,course,status\n"  # line 1
        "1,A,Passed\n"  # line 2, record 1
        '2,"multi\nline",Passed\n'  # lines 3-4, record 2
        "\n"  # line 5, blank
        "3,B,Passed,extra,more\n"  # line 6, record 3: too many
        "4,C\n"  # line 7, record 4: too few
        '5,"x\ny",Failed\n'  # lines 8-9, record 5
        "6,D,Passed\n"  # line 10, record 6
    )
    path = _write(tmp_path / "r.csv", data)
    records, numbers, errors = _read_all(path)
    assert numbers == [1, 2, 3, 4, 5, 6]
    assert errors == [
        None,
        None,
        "line 6: expected 3 fields, found 5",
        "line 7: expected 3 fields, found 2",
        None,
        None,
    ]
    assert [r["id"] for r in records] == ["1", "2", "3", "4", "5", "6"]
    assert records[1]["course"] == "multi\nline" and records[4]["course"] == "x\ny"
    assert records[2] == {"id": "3", "course": "B", "status": "Passed"}
    assert records[3] == {"id": "4", "course": "C", "status": None}


@pytest.mark.parametrize(
    ("tail", "expected_last"),
    [
        ('3,"never closed\n4,D\n', {"id": "3", "course": "never closed\n4,D\n"}),
        ('3,"never closed', {"id": "3", "course": "never closed"}),
    ],
)
def test_quote_left_open_at_the_end_is_a_row_error(
    tmp_path: Path, tail: str, expected_last: dict[str, str]
) -> None:
    """A quote never closed swallows the rest of the file into one record, flagged malformed."""
    path = _write(tmp_path / "open.csv", "id,course\n1,A\n2,B\n" + tail)
    records, numbers, errors = _read_all(path)
    assert numbers == [1, 2, 3]
    assert records[2] == expected_last
    assert errors[:2] == [None, None]
    assert errors[2] == "line 4: quoted field is never closed (runs to the end of the file)"


def test_closed_quote_on_the_last_line_without_newline_is_fine(tmp_path: Path) -> None:
    """A last record that ends in a closed quote, with no final line break, is a good record."""
    path = _write(tmp_path / "ok.csv", 'id,course\n1,"A\nB"\n2,"C ""q"""')
    records, _, errors = _read_all(path)
    assert records == [{"id": "1", "course": "A\nB"}, {"id": "2", "course": 'C "q"'}]
    assert errors == [None, None]


def test_small_batches_keep_numbering_continuous(tmp_path: Path) -> None:
    """With batch_rows=3 every batch holds at most 3 records and numbers run on across batches."""
    lines = [f"{i},C{i}" if i % 4 else f"{i},C{i},bad" for i in range(1, 12)]
    path = _write(tmp_path / "m.csv", "id,course\n" + "\n".join(lines) + "\n")
    batches = list(iter_batches(path, batch_rows=3))
    assert [b.num_rows for b in batches] == [3, 3, 3, 2]
    numbers = [n for b in batches for n in b.rows.to_pylist()]
    errors = [e for b in batches for e in b.read_errors.to_pylist()]
    ids = [i for b in batches for i in b.table.column("id").to_pylist()]
    assert numbers == list(range(1, 12)) and ids == [str(i) for i in range(1, 12)]
    bad = {n: e for n, e in zip(numbers, errors, strict=True) if e}
    assert bad == {n: f"line {n + 1}: expected 2 fields, found 3" for n in (4, 8)}


def test_malformed_record_after_many_blocks_keeps_earlier_batches_and_numbering(
    tmp_path: Path,
) -> None:
    """A malformed record deep in a multi-megabyte file: numbering stays exact on both paths."""
    count = 60_000
    lines = [f"{i:07d},course-{i % 97},Passed,{i % 300}" for i in range(1, count + 1)]
    lines[49_999] = "50000,course,Passed"  # record 50000: one field short
    lines.insert(30_000, "")  # a blank line before record 30001
    lines[40_000] = '"multi\nline",c,Passed,1'  # record 40000 spans two lines
    path = _write(tmp_path / "big.csv", "id,course,status,minutes\n" + "\n".join(lines) + "\n")
    assert path.stat().st_size > 1_500_000  # pyarrow blocks are 1 MB: one is handed out first
    total = 0
    for batch in iter_batches(path, batch_rows=15_000):
        numbers = batch.rows.to_pylist()
        assert numbers == list(range(total + 1, total + batch.num_rows + 1))
        ids = batch.table.column("id").to_pylist()
        errors = batch.read_errors.to_pylist()
        for number, value, error in zip(numbers, ids, errors, strict=True):
            if number == 50_000:
                assert error == "line 50003: expected 4 fields, found 3"
            else:
                assert error is None
                assert value == ("multi\nline" if number == 40_000 else f"{number:07d}")
        total += batch.num_rows
    assert total == count


_CELL = st.text(alphabet=st.sampled_from(list("ab0 ,;\t|\"\n\r'é€")), max_size=6)


@settings(max_examples=100, deadline=None)
@given(
    width=st.integers(min_value=1, max_value=4),
    data=st.data(),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    terminator=st.sampled_from(["\n", "\r\n"]),
)
def test_round_trip_and_both_paths_agree(
    tmp_path_factory: pytest.TempPathFactory,
    width: int,
    data: st.DataObject,
    delimiter: str,
    terminator: str,
) -> None:
    """Any table written by csv.writer reads back exactly, numbered 1..n, on the fast path and on
    the exact path (forced by a malformed last record)."""
    rows = data.draw(st.lists(st.lists(_CELL, min_size=width, max_size=width), max_size=12))
    blanks = data.draw(st.sets(st.integers(0, len(rows)), max_size=3))
    names = [f"c{i}" for i in range(width)]
    quoting: Literal[0, 1] = data.draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]))
    if terminator == "\n" and any("\r" in cell for row in rows for cell in row):
        quoting = csv.QUOTE_ALL  # csv.writer leaves a lone CR unquoted when LF ends lines
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator=terminator, quoting=quoting)
    writer.writerow(names)
    for index, row in enumerate(rows):
        if index in blanks:
            buffer.write(terminator)
        writer.writerow(row)
    folder = tmp_path_factory.mktemp("rt")
    clean = _write(folder / "clean.csv", buffer.getvalue())
    expected = [dict(zip(names, row, strict=True)) for row in rows]
    numbers = list(range(1, len(rows) + 1))
    assert _read_all(clean, delimiter=delimiter, batch_rows=5) == (
        expected,
        numbers,
        [None] * len(rows),
    )
    bad_line = delimiter.join(["x"] * (width + 1)) + terminator
    broken = _write(folder / "broken.csv", buffer.getvalue() + bad_line)
    records, got_numbers, errors = _read_all(broken, delimiter=delimiter, batch_rows=5)
    assert records[:-1] == expected and got_numbers == [*numbers, len(rows) + 1]
    assert errors[:-1] == [None] * len(rows) and errors[-1] is not None


# --- Parquet -------------------------------------------------------------------------------


def test_parquet_keeps_types_across_row_groups(tmp_path: Path) -> None:
    """Parquet columns keep their types; several row groups stream with continuous numbers."""
    count = 25
    table = pa.table(
        {
            "user_id": pa.array([f"{i:05d}" for i in range(count)], pa.string()),
            "minutes": pa.array(range(count), pa.int64()),
            "completed": pa.array(
                [datetime(2024, 1, 1 + i) for i in range(count)], pa.timestamp("ms", tz="UTC")
            ),
        }
    )
    path = tmp_path / "x.parquet"
    pq.write_table(table, path, row_group_size=7)
    assert pq.ParquetFile(path).num_row_groups == 4
    assert read_header(path) == ["user_id", "minutes", "completed"]
    batches = list(iter_batches(path, batch_rows=10))
    assert all(b.num_rows <= 10 for b in batches)
    assert batches[0].table.schema == table.schema
    combined = pa.concat_tables([b.table for b in batches])
    assert combined.equals(table)
    assert [n for b in batches for n in b.rows.to_pylist()] == list(range(1, count + 1))
    assert all(b.read_errors.null_count == b.num_rows for b in batches)
    assert batches[0].read_errors.type == pa.string() and batches[0].rows.type == pa.int64()


def test_broken_parquet_files_are_source_errors(tmp_path: Path) -> None:
    """An empty .parquet or one that is really a CSV cannot be read: SourceError naming it."""
    empty = _write(tmp_path / "empty.parquet", b"")
    with pytest.raises(SourceError, match=r"empty\.parquet: file is empty"):
        read_header(empty)
    fake = _write(tmp_path / "fake.pq", "id,course\n1,A\n")
    with pytest.raises(SourceError, match=r"fake\.pq: cannot read as Parquet"):
        list(iter_batches(fake))
