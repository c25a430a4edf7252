"""Prefect flows: the same run functions as the plain path, recorded as flow and task runs.

Every flow takes JSON-serialisable parameters only (paths, a mapping path, options) and opens its
client, ledger and resolver inside, so each can be deployed (``prefect.yaml``) or served.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Completed, State

from pipelines.core.settings import RunOptions
from pipelines.orchestration.artifacts import job_markdown, summary_markdown
from pipelines.orchestration.fan_out import deployed_runner
from pipelines.orchestration.progress_artifact import BytesProgress
from pipelines.orchestration.secret_blocks import settings_with_secret
from pipelines.orchestration.states import job_state, result_of, run_state
from pipelines.output.deadletter_reasons import deadletter_reasons
from pipelines.output.report import RunReport
from pipelines.run.chunks import Chunk, check_chunk
from pipelines.run.delivery_slices import DeliverySlice
from pipelines.run.execute import run_plan
from pipelines.run.jobs import job_files, run_files
from pipelines.run.plan import RunPlan
from pipelines.run.request import RunRequest
from pipelines.run.run_log import PROGRESS_SECONDS, RunHooks
from transforms.validation import CheckedRows


def _run_name() -> str:
    parameters = flow_run.parameters
    mode = "dry-run" if parameters.get("dry_run") else "deliver"
    sources = parameters.get("sources") or []
    first = Path(sources[0]).name if sources else "?"
    more = f" +{len(sources) - 1}" if len(sources) > 1 else ""
    return f"{mode} {first}{more}"


@task(
    name="check_chunk",
    task_run_name="check {chunk.source.name} rows {chunk.first_row}+",
    cache_policy=NO_CACHE,
)
def check_chunk_task(chunk: Chunk, plan: RunPlan, now: datetime) -> CheckedRows:
    """Convert and validate one chunk (pure and cheap: no retries needed)."""
    return check_chunk(chunk, plan, now)


@task(
    name="deliver_slice",
    task_run_name="deliver {piece.source} rows {piece.first_row}+",
    cache_policy=NO_CACHE,
)
async def deliver_slice_task(piece: DeliverySlice) -> State:
    """One slice of delivery on the timeline: from its first row handed to the client (whose one
    pool of workers sends every row) to its last answer; its counts are the state's message and
    result."""
    counts = await piece.finished()
    return Completed(message=piece.summary(), data=counts)


def _watch_slice(piece: DeliverySlice) -> Awaitable[object]:
    """Start the slice's task run (its final state, never an exception, ends the coroutine)."""
    # Called from a running flow, an async task returns a coroutine (Prefect types it a State).
    run: Awaitable[object] = deliver_slice_task(piece, return_state=True)  # type: ignore[assignment]
    return run


def run_hooks(progress_seconds: float) -> RunHooks:
    """Log lines through this flow run's logger; each delivery slice a task run."""
    return RunHooks(
        log=get_run_logger(), progress_seconds=progress_seconds, watch_slice=_watch_slice
    )


@flow(name="sync_completions", flow_run_name=_run_name)
async def sync_completions(
    sources: list[str],
    mapping: str,
    replay: bool = False,
    out: str | None = None,
    dry_run: bool = False,
    ledger: str | None = None,
    max_invalid_pct: float | None = None,
    check_remote: bool = False,
    base_url: str | None = None,
    rate_limit: str | None = None,
    concurrency: int | None = None,
    api_key_block: str | None = None,
    state_block: str | None = None,
    resend_in_doubt: bool = False,
    progress_seconds: float = PROGRESS_SECONDS,
) -> State:
    """Dry run or delivery of the sources, with log lines, a task run per delivery slice and a
    run-summary artifact.

    The flow run ends Failed when the share of invalid + failed rows exceeds ``max_invalid_pct``
    or the run was aborted, so Prefect notifications and automations can act on it; with rows
    dead-lettered within it, ``Completed with dead-letters`` and how many and why.
    """
    request = RunRequest(
        sources, mapping, replay, out, dry_run, ledger, max_invalid_pct, check_remote,
        base_url, rate_limit, concurrency, resend_in_doubt, state_block,
    )  # fmt: skip
    settings = await settings_with_secret(request.settings(), api_key_block, request.state_block)
    plan = request.plan(settings)
    hooks = run_hooks(progress_seconds)
    report = await run_plan(
        plan, settings, request.options(settings), check=check_chunk_task, hooks=hooks
    )
    await acreate_markdown_artifact(
        key="lms-sync-run-summary",
        markdown=summary_markdown(report),
        description=f"lms-sync {report.mode} {report.run_id}",
    )
    # The local file: with ``out`` in a bucket, report.deadletter names the uploaded objects.
    parquet = Path(report.deadletter["parquet"]) if "parquet" in report.deadletter else None
    if parquet is not None and report.folder is not None:
        parquet = report.folder / parquet.name
    reasons = deadletter_reasons(parquet) if parquet is not None else []
    if reasons:
        await acreate_table_artifact(
            key="lms-sync-deadletter-reasons",
            table=reasons,
            description=f"dead-lettered rows of {report.run_id}: code, field, stage, file:row",
        )
    return run_state(report)


@flow(name="adhoc_import", flow_run_name="import {source}")
async def adhoc_import(
    source: str,
    mapping: str,
    send: bool = False,
    out: str | None = None,
    ledger: str | None = None,
    api_key_block: str | None = None,
    state_block: str | None = None,
) -> State:
    """One file: a dry run with payloads and dead-letter (``send`` delivers it)."""
    state = await sync_completions(
        [source], mapping, out=out, dry_run=not send, ledger=ledger,
        api_key_block=api_key_block, state_block=state_block, return_state=True,
    )  # fmt: skip
    return run_state(await result_of(state, RunReport))


@flow(name="nightly_sync", flow_run_name="nightly {landing}")
async def nightly_sync(
    landing: str,
    mapping: str,
    out: str | None = None,
    ledger: str | None = None,
    dry_run: bool = False,
    max_invalid_pct: float | None = None,
    api_key_block: str | None = None,
    state_block: str | None = None,
) -> State:
    """Process the exports in a landing directory (or glob) not processed before, oldest first."""
    request = RunRequest(
        [landing], mapping, False, out, dry_run, ledger, max_invalid_pct,
        state_block=state_block,
    )  # fmt: skip
    return await _run_job("nightly_sync", [landing], request, api_key_block)


@flow(name="backfill", flow_run_name="backfill {mapping}")
async def backfill(
    sources: list[str],
    mapping: str,
    out: str | None = None,
    ledger: str | None = None,
    dry_run: bool = False,
    max_invalid_pct: float | None = None,
    api_key_block: str | None = None,
    state_block: str | None = None,
    parallel: int = 1,
) -> State:
    """Deliver many files (or a partitioned directory), one subflow per file, ``parallel`` at a
    time sharing the key's rate budget (deployed, with an ``out``: flow runs of the
    sync-completions deployment on any worker of the pool); rerun to resume."""
    request = RunRequest(
        sources, mapping, False, out, dry_run, ledger, max_invalid_pct,
        state_block=state_block,
    )  # fmt: skip
    return await _run_job("backfill", sources, request, api_key_block, parallel)


async def job_flow(
    job: str,
    patterns: list[str],
    request: RunRequest,
    api_key_block: str | None,
    parallel: int = 1,
) -> State:
    """Run the job's flow (``nightly_sync`` or ``backfill``) and return its final state."""
    common = {
        "mapping": request.mapping,
        "out": request.out,
        "ledger": request.ledger,
        "state_block": request.state_block,
        "dry_run": request.dry_run,
        "max_invalid_pct": request.max_invalid_pct,
        "api_key_block": api_key_block,
    }
    if job == "nightly_sync":
        return await nightly_sync(landing=patterns[0], **common, return_state=True)  # type: ignore[arg-type]
    return await backfill(sources=patterns, **common, parallel=parallel, return_state=True)  # type: ignore[arg-type]


async def _run_job(
    job: str,
    patterns: list[str],
    request: RunRequest,
    api_key_block: str | None,
    parallel: int = 1,
) -> State:
    """One ``sync_completions`` run per file (a subflow, or a flow run of its deployment when
    this job is deployed and ``parallel`` > 1), a job artifact, and the job's final state."""
    logger = get_run_logger()
    settings = await settings_with_secret(request.settings(), api_key_block, request.state_block)

    async def run_one(path: Path, options: RunOptions) -> RunReport:
        parameters = {
            **request.for_file(path, options).parameters(),
            "api_key_block": api_key_block,
        }
        return await result_of(await sync_completions(**parameters, return_state=True), RunReport)

    deployed = await deployed_runner(request, api_key_block, parallel, logger)
    files = job_files(job, patterns)
    progress = BytesProgress(files, f"lms-sync-{job.replace('_', '-')}-progress")
    await progress.start(f"lms-sync {job}: bytes of its {len(files)} file(s) done")
    summary = await run_files(
        job, files, request.spec(), settings, request.options(settings), deployed or run_one,
        logger.info, parallel, progress.file_done,
    )  # fmt: skip
    await progress.finish()
    await acreate_markdown_artifact(
        key=f"lms-sync-{job.replace('_', '-')}",
        markdown=job_markdown(summary),
        description=f"lms-sync {job}",
    )
    return job_state(summary)
