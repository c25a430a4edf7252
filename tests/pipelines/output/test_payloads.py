"""payloads.jsonl lines are written straight from Arrow and parse back exactly."""

from __future__ import annotations

from pathlib import Path

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
