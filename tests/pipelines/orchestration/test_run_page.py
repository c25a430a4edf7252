"""What an operator sees of a flow run in the Prefect UI (issue 15), read back from the Prefect API:
its logs, its delivery task runs on the timeline and a final state that says what happened.

A delivering ``sync_completions`` run of the Cornerstone sample against a real sandbox that allows
4 requests a second (so some requests are answered 429 with a ``Retry-After``), with a progress line
every 0.3 s instead of every 30 s.
"""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipelines.output.report import RunReport
from pipelines.run.run_log import deadletter_line
from pipelines.sandbox import RunningSandbox
from tests.conftest import SANDBOX_ACCOUNT, SANDBOX_KEY
from tests.pipelines.orchestration.test_job_flows import artifacts_of

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "data" / "samples" / "cornerstone_transcript.csv"
MAPPING = ROOT / "config" / "mappings" / "cornerstone_transcript.yaml"
SENT, DEADLETTERED, READ = 10, 8, 24  # the sample's rows (data/samples/README.md)
LOG_WAIT_SECONDS = 20.0  # logs reach the server in batches


@pytest.fixture
def throttled_env(
    prefect_server: None,
    make_sandbox: Callable[..., RunningSandbox],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[RunningSandbox]:
    """A sandbox allowing 4 requests a second (the client may send more: it meets 429s), the
    environment pointing at it, and the run logger at INFO (the harness quiets Prefect)."""
    sandbox = make_sandbox(rate_limit=(4, 1.0))
    monkeypatch.setenv("STACKONE_API_KEY", SANDBOX_KEY)
    monkeypatch.setenv("STACKONE_ACCOUNT_ID", SANDBOX_ACCOUNT)
    monkeypatch.setenv("STACKONE_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("LMS_SYNC_RATE_LIMIT", "100000/1s")
    import prefect.main  # noqa: F401  # sets Prefect's logging up: levels set before it are reset

    loggers = [logging.getLogger(name) for name in ("prefect.flow_runs", "prefect.task_runs")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.INFO)
    yield sandbox
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


def personal_data() -> set[str]:
    """Every learner id, e-mail and name of the sample."""
    with SAMPLE.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns = ("User ID", "User Email", "User Full Name")
    return {row[name].strip() for row in rows for name in columns if row.get(name, "").strip()}


async def read_back(flow_run_id: Any, last_line: str) -> tuple[Any, list[Any], list[str]]:
    """The flow run, its task runs and its log messages (waiting for ``last_line`` to arrive)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.client.schemas.sorting import LogSort, TaskRunSort
    from prefect.logging.handlers import APILogHandler

    await APILogHandler.aflush()
    async with get_client() as client:
        flow_run = await client.read_flow_run(flow_run_id)
        task_runs = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
            sort=TaskRunSort.EXPECTED_START_TIME_ASC,
        )
        deadline = time.monotonic() + LOG_WAIT_SECONDS
        while True:
            logs = await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])),
                sort=LogSort.TIMESTAMP_ASC,
            )
            messages = [log.message for log in logs]
            if any(last_line in message for message in messages) or time.monotonic() > deadline:
                return flow_run, list(task_runs), messages
            await asyncio.sleep(0.2)


async def read_reasons(flow_run_id: Any) -> Any:
    """The data of the run's dead-letter reasons table artifact."""
    artifacts = await artifacts_of("lms-sync-deadletter-reasons", [flow_run_id])
    assert len(artifacts) == 1
    data = artifacts[0].data
    return json.loads(data) if isinstance(data, str) else data


def test_a_delivering_flow_run_shows_logs_delivery_task_runs_and_a_state_that_says_why(
    throttled_env: RunningSandbox, tmp_path: Path
) -> None:
    """The flow run's logs hold the start, file, progress (with the 429 pauses) and outcome lines
    and no personal data or API key; its delivery task runs count every row sent; its state is
    ``Completed with dead-letters`` with the same count and codes as the run's report."""
    from pipelines.orchestration.flows import sync_completions

    async def run() -> tuple[Any, Any, list[Any], list[str]]:
        state = await sync_completions(
            [str(SAMPLE)],
            str(MAPPING),
            out=str(tmp_path / "run"),
            ledger=str(tmp_path / "ledger.sqlite"),
            progress_seconds=0.3,
            return_state=True,
        )
        report = await state.aresult(raise_on_failure=False)
        flow_run, task_runs, logs = await read_back(state.state_details.flow_run_id, "run folder")
        reasons.extend(await read_reasons(state.state_details.flow_run_id))
        return report, flow_run, task_runs, logs

    reasons: list[dict[str, str]] = []

    report, flow_run, task_runs, logs = asyncio.run(run())
    assert isinstance(report, RunReport)
    assert report.outcomes["delivered"] == SENT and report.status_429 > 0

    # A state that says what happened, matching the report (and so the CLI's summary).
    state = flow_run.state
    assert state.type.value == "COMPLETED" and state.name == "Completed with dead-letters"
    assert state.message == deadletter_line(report)
    assert state.message.startswith(f"{DEADLETTERED} of {READ} rows dead-lettered: ")
    assert "invalid_timestamp" in state.message

    # Logs: start, file, progress with the 429 pauses, outcome; never personal data or the key.
    text = "\n".join(logs)
    assert f"delivery of 1 source(s) ({SAMPLE.name}" in text
    assert f"mapping {MAPPING.name} · target {throttled_env.base_url}" in text
    assert "rate limit 100000/1s" in text
    assert f"file 1 of 1: {SAMPLE.name}" in text
    progress = [line for line in logs if line.startswith("delivering: ")]
    assert any("pause(s) for 429/408 (Retry-After 1" in line for line in progress)
    assert any(f"of {READ} rows read have an outcome (delivered" in line for line in progress)
    assert any(
        line.startswith(f"deliver {report.run_id} finished: {READ} rows read") for line in logs
    )
    assert any(state.message in line for line in logs)  # the outcome line names the dead-letters
    leaked = {value for value in personal_data() | {SANDBOX_KEY} if value in text}
    assert not leaked

    # The dead-letter reasons table: one row per dead-lettered row, codes and places only.
    assert len(reasons) == DEADLETTERED
    assert {row["code"] for row in reasons} == set(report.deadletter_reasons)
    assert all(row["where"].startswith(f"{SAMPLE.name}:") for row in reasons)
    assert not {value for value in personal_data() if value in json.dumps(reasons)}

    # The timeline: the check task run, then delivery task runs whose counts add up to rows sent.
    names = [task_run.name for task_run in task_runs]
    assert names[0] == f"check {SAMPLE.name} rows 1+"
    delivery = [task_run for task_run in task_runs if task_run.name.startswith("deliver ")]
    assert [task_run.name for task_run in delivery] == [f"deliver {SAMPLE.name} rows 1+"]
    assert all(task_run.state.type.value == "COMPLETED" for task_run in delivery)
    assert delivery[0].state.message.startswith(f"{SENT} rows (1-")
    assert f"delivered {SENT}" in delivery[0].state.message
    assert delivery[0].total_run_time.total_seconds() >= 1.0  # the 429 pause is on the timeline
