"""Honest failure (DESIGN §8): an unexpected error ends a run as crashed, never as a finished run.

A crash is injected through the run's ``check`` seam (or, for the CLI, the converter it calls):
the run exits 3, report.json says ``crashed`` and still adds up (rows without an outcome are
``pending``), and the traceback is saved, owner-only, in the run folder.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import stat
from contextlib import closing
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import pipelines.run.chunks
from pipelines.api.client import StackOneClient
from pipelines.core.settings import Settings, load_settings
from pipelines.output.report import RunReport
from pipelines.run.chunks import Chunk, check_chunk
from pipelines.run.delivery import deliver_run
from pipelines.run.dryrun import dry_run
from pipelines.run.plan import RunPlan, load_mapping, plan_run
from pipelines.sandbox import RunningSandbox
from pipelines.state.ledger import Ledger
from pipelines.state.state_schema import SCHEMA_VERSION
from tests.conftest import SANDBOX_ACCOUNT, SANDBOX_KEY
from tests.pipelines.run.test_delivery import (
    assert_balanced,
    cli_env,
    lms_sync,
    read_report,
    write_export,
)
from transforms.validation import CheckedRows

ROWS, BATCH = 350, 100  # four chunks: the crash comes in the third


class Boom(RuntimeError):
    """The unexpected error the tests inject."""


def explode_on_third_chunk(chunk: Chunk, plan: RunPlan, now: datetime) -> CheckedRows:
    """``check_chunk`` for the first two chunks, then an error no one expects."""
    if chunk.first_ordinal >= 2 * BATCH:
        raise Boom("converter blew up")
    return check_chunk(chunk, plan, now)


def break_keys_on_second_chunk(chunk: Chunk, plan: RunPlan, now: datetime) -> CheckedRows:
    """From the second chunk on, a status column one row short: settling fails half way."""
    checked = check_chunk(chunk, plan, now)
    if chunk.first_ordinal < BATCH:
        return checked
    return replace(checked, status=checked.status.slice(1))


def settings_for(sandbox: RunningSandbox) -> Settings:
    """Settings aimed at ``sandbox`` with a rate no test reaches."""
    return load_settings(
        base_url=sandbox.base_url, api_key=SANDBOX_KEY, account_id=SANDBOX_ACCOUNT,
        rate_limit="2000/1s", concurrency=8,
    )  # fmt: skip


def plan_for(folder: Path, settings: Settings | None = None) -> RunPlan:
    """The generated export of ``ROWS`` rows, read ``BATCH`` rows at a time."""
    export, mapping = write_export(folder, ROWS)
    account = settings.account_id if settings else SANDBOX_ACCOUNT
    return plan_run([str(export)], load_mapping(mapping, {}), account, batch_rows=BATCH)


def assert_crashed(report: RunReport, error: str) -> dict[str, Any]:
    """The report (in memory and on disk) of a crashed run; its traceback file; returns the JSON."""
    assert report.exit_code() == 3
    assert report.balanced
    assert report.folder is not None
    saved = read_report(report.folder)
    assert saved["status"] == "crashed"
    assert error in saved["error"]
    assert_balanced(saved)
    traceback = Path(saved["traceback"])
    assert traceback.parent == report.folder
    assert stat.S_IMODE(traceback.stat().st_mode) == 0o600
    assert error in traceback.read_text(encoding="utf-8")
    return saved


def test_a_dry_run_that_crashes_exits_3_with_a_report_that_adds_up(tmp_path: Path) -> None:
    """The chunks read before the crash keep their outcomes; the report says crashed."""
    plan = plan_for(tmp_path / "in")
    report = dry_run(plan, out=tmp_path / "run", target="https://x", check=explode_on_third_chunk)
    saved = assert_crashed(report, "Boom: converter blew up")
    assert saved["rows_read"] == 2 * BATCH


def test_rows_read_without_an_outcome_when_a_dry_run_crashes_are_pending(tmp_path: Path) -> None:
    """A crash half way through settling a chunk: its rows still without outcome are pending."""
    plan = plan_for(tmp_path / "in")
    report = dry_run(
        plan, out=tmp_path / "run", target="https://x", check=break_keys_on_second_chunk
    )
    saved = assert_crashed(report, "")
    assert saved["rows_read"] == 2 * BATCH
    assert saved["outcomes"]["pending"] > 0


def test_a_delivering_run_that_crashes_exits_3_with_a_report_that_adds_up(
    tmp_path: Path, sandbox: RunningSandbox
) -> None:
    """What was sent before the crash stays delivered; the rest of the read rows are pending."""
    settings = settings_for(sandbox)
    plan = plan_for(tmp_path / "in", settings)

    async def run() -> RunReport:
        with Ledger(tmp_path / "ledger.sqlite", settings.target) as ledger:
            async with StackOneClient.from_settings(settings) as client:
                return await deliver_run(
                    plan, client, ledger, out=tmp_path / "run", target=settings.target,
                    check=explode_on_third_chunk,
                )  # fmt: skip

    report = asyncio.run(run())
    saved = assert_crashed(report, "Boom: converter blew up")
    assert saved["mode"] == "deliver"
    assert saved["outcomes"]["delivered"] == len(sandbox.completions())
    with Ledger(tmp_path / "ledger.sqlite", settings.target) as ledger:
        assert ledger.counts().get("in_flight", 0) == 0  # the crash left no key in doubt


@pytest.mark.parametrize("dry", [True, False], ids=["dry_run", "deliver"])
def test_the_cli_names_a_crash_in_one_line_with_the_traceback_path_and_exits_3(
    tmp_path: Path, sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch, dry: bool
) -> None:
    """One ``error:`` line (type, message, traceback file), no traceback printed, no API key."""

    def explode(table: pa.Table, *args: object, **kwargs: object) -> CheckedRows:
        raise Boom(f"cannot convert (key {SANDBOX_KEY})")

    monkeypatch.setattr(pipelines.run.chunks, "check_rows", explode)
    export, mapping = write_export(tmp_path / "in", 50)
    out = tmp_path / "run"
    args: list[str | Path] = [
        "run", export, "-m", mapping, "--out", out, "--ledger", tmp_path / "ledger.sqlite"
    ]  # fmt: skip
    result = lms_sync(*args, *(["--dry-run"] if dry else []), env=cli_env(sandbox))
    assert result.exit_code == 3, result.output
    errors = [line for line in result.output.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, result.output
    assert "Boom: cannot convert" in errors[0]
    assert str(out / "traceback.txt") in errors[0]
    assert "Traceback" not in result.output
    report = read_report(out)
    assert report["status"] == "crashed"
    assert_balanced(report)
    for text in (result.output, json.dumps(report), (out / "traceback.txt").read_text("utf-8")):
        assert SANDBOX_KEY not in text
    assert "[REDACTED]" in (out / "traceback.txt").read_text("utf-8")


def test_a_finished_run_says_finished_and_an_interrupted_one_aborted(tmp_path: Path) -> None:
    """``status`` in report.json: finished when the run got through, aborted when stopped."""
    plan = plan_for(tmp_path / "in")
    report = dry_run(plan, out=tmp_path / "run", target="https://x")
    assert read_report(tmp_path / "run")["status"] == "finished"
    assert read_report(tmp_path / "run")["error"] is None
    report.aborted = "interrupted"
    report.finish(report.deadletter)
    assert read_report(tmp_path / "run")["status"] == "aborted"


def test_report_json_is_replaced_whole_or_not_at_all(tmp_path: Path) -> None:
    """A report that cannot be written leaves the previous report.json as it was, no temp file."""
    plan = plan_for(tmp_path / "in")
    report = dry_run(plan, out=tmp_path / "run", target="https://x")
    before = (tmp_path / "run" / "report.json").read_bytes()
    report.estimate = {"text": object()}  # not serialisable
    with pytest.raises(TypeError):
        report.write(tmp_path / "run" / "report.json")
    assert (tmp_path / "run" / "report.json").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "run").iterdir() if "report" in p.name) == [
        "report.json"
    ]


def test_a_run_on_a_ledger_from_a_newer_tool_exits_2_with_one_line(
    tmp_path: Path, sandbox: RunningSandbox
) -> None:
    """Not a crash: exit 2 and one ``error:`` line naming the file and both schema versions."""
    path = tmp_path / "ledger.sqlite"
    with Ledger(path, sandbox.base_url):
        pass
    with closing(sqlite3.connect(path)) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        db.commit()
    export, mapping = write_export(tmp_path / "in", 20)
    for dry in (["--dry-run"], []):
        result = lms_sync(
            "run", export, "-m", mapping, "--out", tmp_path / "run", "--ledger", path, *dry,
            env=cli_env(sandbox),
        )  # fmt: skip
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and str(path) in errors[0], result.output
        assert f"{SCHEMA_VERSION + 1}" in errors[0] and f"{SCHEMA_VERSION}" in errors[0]
