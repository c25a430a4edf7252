"""What a run tells the person watching it on the plain path (``pipelines/run/run_log.py``,
``delivery_watch.py``, ``delivery_slices.py``): log lines through a standard ``logging`` logger and
delivery grouped into slices, against the real sandbox over HTTP.
"""

from __future__ import annotations

import asyncio
import csv
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipelines.output.report import RunReport
from pipelines.run.delivery_slices import DeliverySlice, SliceTracker
from pipelines.run.execute import run_plan
from pipelines.run.request import RunRequest
from pipelines.run.run_log import RunHooks, deadletter_line
from pipelines.sandbox import RunningSandbox
from tests.conftest import SANDBOX_ACCOUNT, SANDBOX_KEY

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "data" / "samples" / "cornerstone_transcript.csv"
MAPPING = ROOT / "config" / "mappings" / "cornerstone_transcript.yaml"
SENT = 10  # rows of the sample a first delivering run sends (8 of 24 dead-lettered)


class Lines(logging.Handler):
    """Keeps every record's level and message."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.levelno, record.getMessage()))

    @property
    def text(self) -> str:
        return "\n".join(message for _, message in self.records)


@pytest.fixture
def lines() -> Iterator[tuple[logging.Logger, Lines]]:
    """A logger of its own (INFO, not propagated) and what it received."""
    logger = logging.getLogger("tests.run_log")
    handler = Lines()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, handler
    logger.removeHandler(handler)


def deliver(
    sandbox: RunningSandbox,
    folder: Path,
    hooks: RunHooks,
    monkeypatch: pytest.MonkeyPatch,
    key: str = SANDBOX_KEY,
) -> RunReport:
    """Deliver the Cornerstone sample to ``sandbox`` as plain functions (no Prefect)."""
    monkeypatch.setenv("STACKONE_API_KEY", key)
    monkeypatch.setenv("STACKONE_ACCOUNT_ID", SANDBOX_ACCOUNT)
    monkeypatch.setenv("STACKONE_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("LMS_SYNC_RATE_LIMIT", "100000/1s")
    request = RunRequest(
        [str(SAMPLE)], str(MAPPING), out=str(folder), ledger=str(folder.parent / "l.sqlite")
    )
    settings = request.settings()
    return asyncio.run(
        run_plan(request.plan(settings), settings, request.options(settings), hooks=hooks)
    )


def personal_data() -> set[str]:
    """Every learner id, e-mail and name of the sample."""
    with SAMPLE.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns = ("User ID", "User Email", "User Full Name")
    return {row[name].strip() for row in rows for name in columns if row.get(name, "").strip()}


def test_a_plain_delivering_run_logs_its_progress_and_watches_each_slice(
    make_sandbox: Callable[..., RunningSandbox],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    lines: tuple[logging.Logger, Lines],
) -> None:
    """Start, file, progress (with the 429 pauses) and outcome lines, no personal data or key;
    slices of 4 rows sent, each watched until its last answer, together counting every row sent."""
    logger, handler = lines
    sandbox = make_sandbox(rate_limit=(4, 1.0))  # the client sends faster: some requests meet 429
    watched: list[tuple[DeliverySlice, dict[str, int]]] = []

    async def watch(piece: DeliverySlice) -> None:
        watched.append((piece, await piece.finished()))

    hooks = RunHooks(log=logger, progress_seconds=0.2, slice_rows=4, watch_slice=watch)
    report = deliver(sandbox, tmp_path / "run", hooks, monkeypatch)

    assert report.outcomes["delivered"] == SENT and report.status_429 > 0
    text = handler.text
    assert text.startswith(f"delivery of 1 source(s) ({SAMPLE.name}, 4.0 kB) · mapping ")
    assert "rate limit 100000/1s · 32 workers" in text
    assert f"file 1 of 1: {SAMPLE.name} (4.0 kB)" in text
    assert "pause(s) for 429/408 (Retry-After 1" in text
    level, last = handler.records[-1]
    assert level == logging.INFO
    assert last.startswith(f"deliver {report.run_id} finished: 24 rows read in ")
    assert f"(delivered {SENT}, duplicate 2, skipped 4, invalid 8)" in last
    assert f"· {deadletter_line(report)} ·" in last
    assert not {value for value in personal_data() | {SANDBOX_KEY} if value in text}

    assert [piece.number for piece, _ in watched] == [1, 2, 3]
    assert [counts for _, counts in watched] == [
        {"rows": 4, "delivered": 4},
        {"rows": 4, "delivered": 4},
        {"rows": 2, "delivered": 2},
    ]
    assert all(piece.done.is_set() and piece.source == SAMPLE.name for piece, _ in watched)
    assert watched[0][0].first_row == 1


def test_an_aborted_run_says_why_as_it_stops_and_at_the_end(
    sandbox: RunningSandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    lines: tuple[logging.Logger, Lines],
) -> None:
    """A 401 stops the run: a warning names the reason, the outcome line is a warning too."""
    logger, handler = lines
    report = deliver(sandbox, tmp_path / "run", RunHooks(log=logger), monkeypatch, key="wrong")
    assert report.aborted
    warnings = [message for level, message in handler.records if level == logging.WARNING]
    assert len(warnings) == 2
    assert warnings[0].startswith("stopping the run: ") and "401" in warnings[0]
    assert warnings[1].startswith(f"deliver {report.run_id} aborted: 24 rows read")
    assert f"stopped early: {report.aborted}" in warnings[1]
    assert "wrong" not in handler.text


def test_a_dry_run_logs_its_start_files_and_outcome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lines: tuple[logging.Logger, Lines]
) -> None:
    """A dry run of two files: the start line, one line per file, the outcome line."""
    logger, handler = lines
    monkeypatch.setenv("STACKONE_ACCOUNT_ID", SANDBOX_ACCOUNT)
    second = tmp_path / "again.csv"
    second.write_bytes(SAMPLE.read_bytes())
    request = RunRequest(
        [str(SAMPLE), str(second)], str(MAPPING), out=str(tmp_path / "dry"), dry_run=True,
        ledger=str(tmp_path / "none.sqlite"),
    )  # fmt: skip
    settings = request.settings()
    report = asyncio.run(
        run_plan(
            request.plan(settings), settings, request.options(settings), hooks=RunHooks(log=logger)
        )
    )
    messages = [message for _, message in handler.records]
    assert messages[0].startswith("dry run of 2 source(s) (cornerstone_transcript.csv, again.csv")
    assert messages[1:3] == [
        "file 1 of 2: cornerstone_transcript.csv (4.0 kB)",
        "file 2 of 2: again.csv (4.0 kB) · 24 rows read so far",
    ]
    assert messages[3].startswith(f"dry run {report.run_id} finished: 48 rows read")
    assert len(messages) == 4


def test_slices_split_at_their_size_and_at_a_new_file_and_end_pending() -> None:
    """Rows join the current slice up to its size or a new file; a stop leaves the rest pending."""

    async def scenario() -> list[DeliverySlice]:
        started: list[DeliverySlice] = []

        async def watch(piece: DeliverySlice) -> None:
            started.append(piece)
            await piece.finished()

        tracker = SliceTracker(watch, size=2)
        for key, source, row in [("a", "x.csv", 1), ("b", "x.csv", 2), ("c", "x.csv", 5)]:
            tracker.taken(key, source, row)
        tracker.taken("d", "y.csv", 1)
        tracker.settled("a", "delivered")
        tracker.settled("b", "failed")
        tracker.settled("c", "duplicate")
        await asyncio.sleep(0)
        assert [piece.done.is_set() for piece in tracker.slices] == [True, True, False]
        await tracker.close()  # the run stops: "d" never answered
        return started

    pieces = asyncio.run(scenario())
    assert [(p.source, p.first_row, p.last_row) for p in pieces] == [
        ("x.csv", 1, 2),
        ("x.csv", 5, 5),
        ("y.csv", 1, 1),
    ]
    assert [p.counts() for p in pieces] == [
        {"rows": 2, "delivered": 1, "failed": 1},
        {"rows": 1, "duplicate": 1},
        {"rows": 1, "pending": 1},
    ]
    assert pieces[0].summary() == "2 rows (1-2 of x.csv): delivered 1, failed 1"
