"""payloads.jsonl lines are written straight from Arrow and parse back exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa

from pipelines.output.payloads import PayloadWriter, payload_lines


def test_lines_parse_back(tmp_path: Path) -> None:
    """Each line is one JSON object with the DESIGN §8 fields; sliced arrays write only their rows."""
    lines = payload_lines(
        pa.array(["acct", "acct", "acct"]),
        pa.array(['u"1', "u2", "u3"]),
        pa.array(['{"a":1}', '{"b":2}', '{"c":3}']),
        pa.array(["k1", "k2", "k3"]),
        'dir/file "x".csv',
        pa.array([1, 2, 3], pa.int64()),
    )
    writer = PayloadWriter(tmp_path)
    writer.write(lines.slice(1, 2))
    writer.write(lines.slice(0, 1))
    writer.close()
    parsed = [
        orjson.loads(line) for line in (tmp_path / "payloads.jsonl").read_bytes().splitlines()
    ]
    assert parsed[0] == {
        "account_id": "acct",
        "user_id": "u2",
        "body": {"b": 2},
        "key": "k2",
        "source_file": 'dir/file "x".csv',
        "source_row": 2,
    }
    assert [p["source_row"] for p in parsed] == [2, 3, 1]
    assert parsed[2]["user_id"] == 'u"1'


def test_only_kept_rows_with_a_line_are_written(tmp_path: Path) -> None:
    """Rows without a line (null: not valid) and rows not kept (repeats, delivered) are left out,
    whatever runs the kept rows form, also in a sliced array."""
    n = 9
    bodies = [None if row in (0, 4) else f'{{"n":{row}}}' for row in range(n)]
    lines = payload_lines(
        pa.array(["acct"] * n),
        pa.array([f"u{row}" for row in range(n)]),
        pa.array(bodies, pa.string()),
        pa.array([f"k{row}" for row in range(n)]),
        "f.csv",
        pa.array(range(1, n + 1), pa.int64()),
    )
    assert lines.null_count == 2
    keep = np.array([True, True, False, True, True, True, False, False, True])
    writer = PayloadWriter(tmp_path)
    writer.write(lines.slice(1), keep[1:])
    writer.write(lines.slice(0, 1), keep[:1])  # a null line kept: nothing to write
    writer.close()
    written = (tmp_path / "payloads.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line)["source_row"] for line in written] == [2, 4, 6, 9]
    assert writer.rows == 4


def test_many_writes_land_in_order_by_close(tmp_path: Path) -> None:
    """Writes go out on a writer thread: after ``close`` the file holds every line, in the
    order written, and ``rows`` counts them."""
    n = 2000
    lines = payload_lines(
        pa.array(["acct"] * n),
        pa.array([f"u{row}" for row in range(n)]),
        pa.array([f'{{"n":{row}}}' for row in range(n)]),
        pa.array([f"k{row}" for row in range(n)]),
        "f.csv",
        pa.array(range(1, n + 1), pa.int64()),
    )
    writer = PayloadWriter(tmp_path)
    for start in range(0, n, 37):
        writer.write(lines.slice(start, 37))
    writer.close()
    assert writer.rows == n
    rows = [orjson.loads(line)["source_row"] for line in writer.path.read_bytes().splitlines()]
    assert rows == list(range(1, n + 1))


def test_each_write_is_told_how_many_of_its_lines_are_in_the_file(tmp_path: Path) -> None:
    """``on_written`` hears, per write and in order, how many lines it put in the file (rows not
    kept and rows without a line are none of them), at the latest by ``close``."""
    n = 10
    lines = payload_lines(
        pa.array(["acct"] * n),
        pa.array([f"u{row}" for row in range(n)]),
        pa.array([None if row == 3 else f'{{"n":{row}}}' for row in range(n)], pa.string()),
        pa.array([f"k{row}" for row in range(n)]),
        "f.csv",
        pa.array(range(1, n + 1), pa.int64()),
    )
    heard: list[tuple[str, int]] = []
    writer = PayloadWriter(tmp_path)
    writer.write(lines.slice(0, 5), None, lambda count: heard.append(("first", count)))
    keep = np.array([True, False, True, True, False])
    writer.write(lines.slice(5), keep, lambda count: heard.append(("second", count)))
    writer.close()
    assert heard == [("first", 4), ("second", 3)]
    assert writer.rows == 7 == len(writer.path.read_bytes().splitlines())
