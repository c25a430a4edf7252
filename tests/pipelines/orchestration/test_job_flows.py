"""The jobs of issue 4 in Prefect mode: ``nightly_sync``/``backfill`` with a subflow per file,
``sync_completions`` states and the run-summary artifact (``pipelines/orchestration/flows.py``).

One Prefect test server serves this module (``prefect_server`` in this folder's conftest.py);
flow runs talk to the real sandbox over HTTP and are read back with the Prefect client.
"""

from __future__ import annotations

import asyncio
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from pipelines.output.report import RunReport
from pipelines.run.chunks import check_chunk, iter_chunks
from pipelines.run.plan import load_mapping, plan_run
from pipelines.sandbox import RunningSandbox

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "data" / "samples" / "workday_learning.csv"
MAPPING = ROOT / "config" / "mappings" / "workday_learning.yaml"
ACCOUNT = "sandbox-account"
KEY = "sandbox-key"
SAMPLE_SENT = 10  # rows of workday_learning.csv a first delivering run sends (6 of 20 invalid)


def land(folder: Path, name: str, prefix: str, mtime: float) -> Path:
    """The Workday sample with every employee id prefixed (other keys), landed at ``mtime``."""
    folder.mkdir(parents=True, exist_ok=True)
    text = SAMPLE.read_bytes().decode("utf-8-sig")
    path = folder / name
    path.write_text(re.sub(r"(?m)^(\d{5});", rf"{prefix}\1;", text), encoding="utf-8")
    os.utime(path, (mtime, mtime))
    return path


async def flow_runs_under(parent_id: Any) -> list[Any]:
    """The subflow runs a flow run started, oldest first."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    async with get_client() as client:
        runs = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent_id])
            ),
            sort=FlowRunSort.START_TIME_ASC,
        )
    return list(runs)


async def artifacts_of(key: str, flow_run_ids: list[Any]) -> list[Any]:
    """Artifacts with ``key`` that the given flow runs created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    async with get_client() as client:
        found = await client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[key]),
                flow_run_id=ArtifactFilterFlowRunId(any_=flow_run_ids),
            )
        )
    return list(found)


def test_nightly_sync_runs_a_subflow_per_file_and_fails_on_dead_letters(
    deliver_env: RunningSandbox, tmp_path: Path
) -> None:
    """A real nightly_sync flow run: one sync_completions subflow per landed file (oldest first),
    a run-summary artifact per subflow, Failed because rows were dead-lettered; the next run
    sends nothing and ends Completed.
    """
    from pipelines.orchestration.flows import nightly_sync
    from pipelines.run.jobs import JobSummary

    landing = tmp_path / "landing"
    land(landing, "b.csv", "1", mtime=1_700_000_000)
    land(landing, "a.csv", "2", mtime=1_700_000_100)
    params: dict[str, Any] = {
        "landing": str(landing),
        "mapping": str(MAPPING),
        "ledger": str(tmp_path / "ledger.sqlite"),
        "out": str(tmp_path / "runs"),
    }

    async def run() -> tuple[Any, Any, list[Any], list[Any], list[Any]]:
        state = await nightly_sync(**params, return_state=True)
        summary = await state.aresult(raise_on_failure=False)
        children = await flow_runs_under(state.state_details.flow_run_id)
        artifacts = await artifacts_of("lms-sync-run-summary", [c.id for c in children])
        job = await artifacts_of("lms-sync-nightly-sync", [state.state_details.flow_run_id])
        progress.extend(
            await artifacts_of("lms-sync-nightly-sync-progress", [state.state_details.flow_run_id])
        )
        return state, summary, children, artifacts, job

    progress: list[Any] = []
    state, summary, children, artifacts, job = asyncio.run(run())
    assert [float(p.data) for p in progress] == [100.0]  # bytes of the job's files done
    assert state.is_failed(), state.message
    assert state.message == "rows were dead-lettered (see the run summaries)"
    assert isinstance(summary, JobSummary)
    assert [Path(r.sources[0]).name for r in summary.reports] == ["b.csv", "a.csv"]
    assert len(deliver_env.completions()) == 2 * SAMPLE_SENT
    assert [c.name for c in children] == ["deliver b.csv", "deliver a.csv"]
    assert {c.state.type.value for c in children} == {"COMPLETED"}  # no max_invalid_pct given
    assert len(artifacts) == 2
    assert all("| delivered | 10 |" in a.data for a in artifacts)
    assert len(job) == 1  # the job's own summary: one line per file
    assert re.search(r"\| b\.csv \| \S+ \| 10 \| 1 \| 3 \| 6 \| 0 \| 0 \|", job[0].data)
    assert not any(KEY in a.data for a in [*artifacts, *job])

    deliver_env.reset()

    async def rerun() -> Any:
        return await nightly_sync(**params, return_state=True)

    again = asyncio.run(rerun())
    assert again.is_completed(), again.message
    assert deliver_env.request_log() == []


def test_sync_completions_fails_above_max_invalid_pct(
    prefect_server: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dry sync_completions run with 30 % invalid rows is Failed at 5 % and Completed at 50 %."""
    from pipelines.orchestration.flows import sync_completions

    monkeypatch.setenv("STACKONE_ACCOUNT_ID", ACCOUNT)  # a flow reads its settings at the edge

    async def run(pct: float, out: Path) -> Any:
        return await sync_completions(
            [str(SAMPLE)],
            str(MAPPING),
            out=str(out),
            dry_run=True,
            ledger=str(out / "no-ledger.sqlite"),
            max_invalid_pct=pct,
            return_state=True,
        )

    failed = asyncio.run(run(5.0, tmp_path / "strict"))
    assert failed.is_failed()
    assert failed.message == "30.00% of rows invalid or failed > 5.0%"
    report = failed.result(raise_on_failure=False)
    assert isinstance(report, RunReport)
    assert report.outcomes["would_send"] == SAMPLE_SENT and report.outcomes["invalid"] == 6
    assert (tmp_path / "strict" / "payloads.jsonl").exists()

    passed = asyncio.run(run(50.0, tmp_path / "lenient"))
    assert passed.is_completed(), passed.message


def test_check_chunk_task_is_the_plain_step(prefect_server: None) -> None:
    """The Prefect task wraps the pure step: ``task.fn`` gives exactly what ``check_chunk`` gives."""
    from pipelines.orchestration.flows import check_chunk_task

    plan = plan_run([str(SAMPLE)], load_mapping(MAPPING, {}), ACCOUNT)
    now = datetime(2025, 1, 1, tzinfo=UTC)
    chunk = next(iter_chunks(plan))
    assert check_chunk_task.fn(chunk, plan, now).body.equals(check_chunk(chunk, plan, now).body)


async def flow_runs_named(flow_name: str) -> list[Any]:
    """Every run of the named flow on the test server."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    async with get_client() as client:
        runs = await client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name]))
        )
    return list(runs)


@pytest.fixture
def cli_env(deliver_env: RunningSandbox, monkeypatch: pytest.MonkeyPatch) -> RunningSandbox:
    """``deliver_env`` plus the variables ``--prefect`` sets, so they are restored afterwards."""
    from pipelines.core.settings import PREFECT_DEFAULTS

    for name, value in PREFECT_DEFAULTS.items():
        monkeypatch.setenv(name, value)
    return deliver_env


def test_backfill_flow_via_the_cli_prefect_flag(cli_env: RunningSandbox, tmp_path: Path) -> None:
    """``lms-sync backfill --prefect`` runs the backfill flow (Completed under the threshold);
    a rerun finds every file processed and sends nothing.
    """
    from pipelines.cli.app import app

    history = tmp_path / "history"
    for n in range(2):
        land(history, f"2023-0{n + 1}.csv", str(n + 1), mtime=1_700_000_000 + n)
    args = [
        "backfill",
        str(history),
        "-m",
        str(MAPPING),
        "--ledger",
        str(tmp_path / "ledger.sqlite"),
        "--out",
        str(tmp_path / "runs"),
        "--prefect",
        "--max-invalid-pct",
        "40",
    ]
    before = len(asyncio.run(flow_runs_named("backfill")))
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert len(cli_env.completions()) == 2 * SAMPLE_SENT
    runs = asyncio.run(flow_runs_named("backfill"))
    assert len(runs) == before + 1
    assert all(run.state.type.value == "COMPLETED" for run in runs)

    cli_env.reset()
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0, second.output
    assert "already processed, skipped: 2 file(s)" in second.output
    assert cli_env.request_log() == []


def test_api_key_from_a_prefect_secret_block(
    cli_env: RunningSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--api-key-block NAME`` takes the key from a Prefect Secret block (none in the env)."""
    from prefect.blocks.system import Secret

    from pipelines.cli.app import app

    Secret(value=SecretStr(KEY)).save("lms-sync-test-key", overwrite=True)
    monkeypatch.delenv("STACKONE_API_KEY")
    land(tmp_path / "landing", "a.csv", "7", mtime=1_700_000_000)
    result = CliRunner().invoke(
        app,
        [
            "nightly",
            str(tmp_path / "landing"),
            "-m",
            str(MAPPING),
            "--ledger",
            str(tmp_path / "ledger.sqlite"),
            "--out",
            str(tmp_path / "runs"),
            "--api-key-block",
            "lms-sync-test-key",
        ],
    )
    assert result.exit_code == 1, result.output  # the sample's dead-lettered rows
    assert len(cli_env.completions()) == SAMPLE_SENT
    assert {entry["key"] for entry in cli_env.request_log()} == {KEY}
