"""A nightly job and an export that breaks off mid-file (issue 8): not marked processed, tried again.

The CLI runs in-process against the real sandbox over HTTP (helpers of ``test_jobs``); the ledger
and the processed-export fingerprints live in a SQLite file under ``tmp_path``.
"""

from __future__ import annotations

import csv
import gzip
import json
import zlib
from pathlib import Path

from pipelines.sandbox import RunningSandbox
from pipelines.source.fingerprints import fingerprint
from pipelines.state.processed_exports import ProcessedExports
from tests.pipelines.run.test_jobs import (
    WORKDAY_HEADER,
    fast_sandbox,  # noqa: F401  (fixture)
    land,
    nightly,
    posts,
    processed_runs,
)

ROWS = 600


def _export() -> bytes:
    """A Workday export of ROWS completions, every row valid and sent."""
    lines = [";".join(WORKDAY_HEADER)]
    for i in range(ROWS):
        lines.append(
            f"{30_000 + i};Worker {i};Org {i % 9};Course {i % 7};Digital Course;"
            f"COURSE-{i:06d};Completed;2024-05-{1 + i % 28:02d};{10 + i % 50}m;{50 + i % 50}"
        )
    return ("\n".join(lines) + "\n").encode()


def _seen(tmp: Path, sandbox: RunningSandbox, path: Path) -> str | None:
    with ProcessedExports(tmp / "ledger.sqlite", sandbox.base_url) as registry:
        return registry.seen(fingerprint(path))


def test_truncated_gzip_is_not_marked_processed_and_its_complete_file_is(
    fast_sandbox: RunningSandbox,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Night 1 lands a .csv.gz cut in half: the rows before the cut are sent, one malformed_row
    marks the cut, and the file is not marked processed (run again, it sends nothing new). Night 2
    the complete file lands under the same name: the rest is sent and the file is marked.
    """
    complete = gzip.compress(_export())
    cut = complete[: len(complete) // 2]
    readable = zlib.decompressobj(wbits=31).decompress(cut)
    good = readable.count(b"\n") - 1  # complete records before the cut (header excluded)
    assert 50 < good < ROWS

    truncated = land(tmp_path, "enrollments.csv.gz", cut)
    first = nightly(fast_sandbox, tmp_path)
    assert first.exit_code == 1, first.output  # the break record is dead-lettered
    assert "Traceback" not in first.output
    [folder] = tmp_path.glob("runs/enrollments*")
    report = json.loads((folder / "report.json").read_text())
    assert report["rows_read"] == good + 1
    assert (report["outcomes"]["delivered"], report["outcomes"]["invalid"]) == (good, 1)
    assert report["reasons"]["malformed_row"] == 1
    with (folder / "deadletter.csv").open(newline="", encoding="utf-8") as handle:
        [dead] = list(csv.DictReader(handle))
    assert dead["_dl_error_code"] == "malformed_row"
    assert dead["_dl_source_row"] == str(good + 1)
    assert "truncated or corrupt" in dead["_dl_error_message"]
    assert len(posts(fast_sandbox)) == good
    assert _seen(tmp_path, fast_sandbox, truncated) is None

    fast_sandbox.reset()  # the same cut file is still there the next night: read again, not sent
    again = nightly(fast_sandbox, tmp_path)
    assert again.exit_code == 1, again.output
    assert processed_runs(again.output) == ["enrollments.csv.gz"]
    assert posts(fast_sandbox) == []
    assert _seen(tmp_path, fast_sandbox, truncated) is None

    whole = land(tmp_path, "enrollments.csv.gz", complete)
    second = nightly(fast_sandbox, tmp_path)
    assert second.exit_code == 0, second.output
    assert processed_runs(second.output) == ["enrollments.csv.gz"]
    assert len(posts(fast_sandbox)) == ROWS - good
    assert len(fast_sandbox.completions()) == ROWS - good  # the sandbox was reset after night 1
    assert _seen(tmp_path, fast_sandbox, whole) is not None

    fast_sandbox.reset()
    third = nightly(fast_sandbox, tmp_path)
    assert third.exit_code == 0, third.output
    assert "enrollments.csv.gz: already processed by run" in third.output
    assert fast_sandbox.request_log() == []
