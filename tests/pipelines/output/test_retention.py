"""Run-folder retention: the oldest finished run folders go, and nothing that is not a run folder."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipelines.output.retention import UNFINISHED_GRACE, prune_runs
from pipelines.output.run_folder import new_run_id

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def run_folder(runs: Path, name: str, *, finished: bool = True) -> Path:
    """A run folder holding a dead-letter file (and report.json when the run finished)."""
    folder = runs / name
    folder.mkdir(parents=True)
    (folder / "deadletter.csv").write_text("personal data\n")
    if finished:
        (folder / "report.json").write_text("{}")
    return folder


def age(folder: Path, days: float) -> None:
    """Make the folder and its files look last changed ``days`` before NOW."""
    stamp = (NOW - timedelta(days=days)).timestamp()
    for path in [*folder.iterdir(), folder]:
        os.utime(path, (stamp, stamp))


def test_keeps_the_newest_and_deletes_the_oldest(tmp_path: Path) -> None:
    """Run ids sort by start time: the N newest stay, the rest are deleted, oldest first."""
    names = [
        "20240101T020000Z-aaaa",
        "20240102T020000Z-0f0f",
        "20231231T235959Z-ffff",
        "20240103T020000Z-1234",
    ]
    for name in names:
        run_folder(tmp_path, name)
    pruned = prune_runs(tmp_path, 2, now=NOW)
    assert [p.name for p in pruned] == ["20231231T235959Z-ffff", "20240101T020000Z-aaaa"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "20240102T020000Z-0f0f",
        "20240103T020000Z-1234",
    ]


def test_never_touches_anything_but_run_folders(tmp_path: Path) -> None:
    """Other folders, files named like a run, near-miss names and symlinks all survive."""
    outside = run_folder(tmp_path / "elsewhere", "20200101T000000Z-abcd")
    runs = tmp_path / "runs"
    run_folder(runs, "20240101T000000Z-0001")
    run_folder(runs, "demo")
    run_folder(runs, "20240101T000000Z-ABCD")  # upper-case hex: not a run id
    run_folder(runs, "20240101T000000Z-00001")
    run_folder(runs, "x20240101T000000Z-0001")
    (runs / "20190101T000000Z-0002").write_text("a file, not a folder")
    (runs / "20180101T000000Z-0003").symlink_to(outside, target_is_directory=True)
    before = sorted(p.name for p in runs.iterdir())
    assert prune_runs(runs, 1, now=NOW) == []
    assert sorted(p.name for p in runs.iterdir()) == before
    assert (outside / "deadletter.csv").is_file()


def test_unfinished_runs_are_kept_until_idle_for_the_grace_period(tmp_path: Path) -> None:
    """A folder without report.json may belong to a run still going: kept while recently active."""
    running = run_folder(tmp_path, "20240520T000000Z-0001", finished=False)
    crashed = run_folder(tmp_path, "20240510T000000Z-0002", finished=False)
    finished = run_folder(tmp_path, "20240511T000000Z-0003")
    newest = run_folder(tmp_path, "20240531T000000Z-0004")
    age(running, 1)
    age(crashed, UNFINISHED_GRACE.days + 1)
    age(finished, 20)
    age(newest, 1)
    pruned = prune_runs(tmp_path, 1, now=NOW)
    assert pruned == [crashed, finished]
    assert running.is_dir() and newest.is_dir()


def test_fewer_runs_than_kept_and_missing_folder_delete_nothing(tmp_path: Path) -> None:
    """Nothing to prune is not an error: a missing runs folder or too few runs."""
    assert prune_runs(tmp_path / "missing", 3) == []
    folder = run_folder(tmp_path, new_run_id(NOW))
    assert prune_runs(tmp_path, 3) == []
    assert folder.is_dir()


def test_keep_must_leave_the_current_run(tmp_path: Path) -> None:
    """keep=0 would delete the run just made (its report and dead-letter): refused."""
    run_folder(tmp_path, new_run_id(NOW))
    with pytest.raises(ValueError, match="at least 1"):
        prune_runs(tmp_path, 0)
    assert len(list(tmp_path.iterdir())) == 1


def test_new_run_ids_match_the_pattern(tmp_path: Path) -> None:
    """Folders made by the run-id generator are the ones retention recognises."""
    old = run_folder(tmp_path, new_run_id(NOW - timedelta(days=2)))
    run_folder(tmp_path, new_run_id(NOW))
    assert prune_runs(tmp_path, 1) == [old]
