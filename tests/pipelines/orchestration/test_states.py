"""Final states of flow runs: a crashed run is a Failed state naming the error (no server needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pipelines.core.outcomes import RunMode
from pipelines.orchestration.states import run_state
from pipelines.output.report import RunReport


def report_in(folder: Path) -> RunReport:
    """A report of a run that read ten rows, nine of them delivered."""
    report = RunReport("r1", RunMode.DELIVER, "https://x", ["a.csv"], datetime.now(UTC))
    report.folder = folder
    report.rows_read = 10
    report.add("delivered", 9)
    return report


def test_a_crashed_run_is_a_failed_state_naming_the_error_and_the_traceback(
    tmp_path: Path,
) -> None:
    """The state's message carries the one line of the crash and where its traceback is."""
    report = report_in(tmp_path)
    try:
        raise KeyError("column 'x'")
    except KeyError as exc:
        report.crashed(exc)
    state = run_state(report)
    assert state.is_failed()
    assert state.message is not None
    assert "run crashed: KeyError" in state.message and "column 'x'" in state.message
    assert str(tmp_path / "traceback.txt") in state.message
    assert report.outcomes["pending"] == 1 and report.balanced


def test_a_finished_run_is_completed(tmp_path: Path) -> None:
    """Nothing crashed, nothing aborted, no threshold: Completed."""
    report = report_in(tmp_path)
    report.add("invalid", 1, "malformed_row")
    assert run_state(report).is_completed()


def test_dead_letters_within_the_threshold_complete_with_a_message_that_says_how_many_and_why(
    tmp_path: Path,
) -> None:
    """Rows dead-lettered, no threshold or under it: ``Completed with dead-letters``, the count
    and the error codes (most first); over it: Failed as before; none: plain Completed."""
    report = report_in(tmp_path)
    report.rows_read = 13
    report.add("invalid", 2, "invalid_timestamp")
    report.add("failed", 1, "http_422")
    report.add("duplicate", 1, "http_409")  # not dead-lettered: not named
    for threshold in (None, 50.0):
        report.max_invalid_pct = threshold
        state = run_state(report)
        assert state.is_completed() and state.name == "Completed with dead-letters"
        assert state.message == "3 of 13 rows dead-lettered: invalid_timestamp 2, http_422 1"
        assert state.result() is report
    report.max_invalid_pct = 10.0
    assert run_state(report).is_failed()
    clean = report_in(tmp_path)
    assert run_state(clean).name == "Completed" and run_state(clean).message is None
