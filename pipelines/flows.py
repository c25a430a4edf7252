"""Prefect flows: the same steps as the plain run, recorded as flow and task runs.

Imported only when a Prefect server is configured (PREFECT_API_URL) or asked for (--prefect,
demo): Prefect's import and temporary server cost seconds that an ad hoc dry run should not pay.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import acreate_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State

from pipelines.client import StackOneClient
from pipelines.delivery import deliver_run
from pipelines.dryrun import dry_run
from pipelines.jobs import JobSummary, backfill_files, landing_files, run_files
from pipelines.ledger import Ledger
from pipelines.report import RunReport
from pipelines.runner import DEFAULT_LEDGER, RunOptions, execute_async, settings_with_secret
from pipelines.settings import Settings, load_settings
from pipelines.steps import Chunk, RunPlan, check_chunk, load_mapping, plan_run
from pipelines.users import UserResolver
from transforms.mapping import MappingSpec
from transforms.validation import CheckedRows


def _run_name() -> str:
    parameters = flow_run.parameters
    plan = parameters.get("plan")
    mode = "dry-run" if parameters.get("client") is None else "deliver"
    first = plan.sources[0].name if plan is not None and plan.sources else "?"
    more = f" +{len(plan.sources) - 1}" if plan is not None and len(plan.sources) > 1 else ""
    return f"{mode} {first}{more}"


@task(
    name="check_chunk",
    task_run_name="check {chunk.source.name} rows {chunk.first_ordinal}+",
    cache_policy=NO_CACHE,
)
def check_chunk_task(chunk: Chunk, plan: RunPlan, now: datetime) -> CheckedRows:
    """Convert and validate one chunk (pure and cheap: no retries needed)."""
    return check_chunk(chunk, plan, now)


@flow(name="sync_completions", flow_run_name=_run_name, validate_parameters=False)
async def sync_completions(
    plan: RunPlan,
    *,
    out: Path | None,
    settings: Settings,
    client: StackOneClient | None = None,
    ledger: Ledger | None = None,
    stop: asyncio.Event | None = None,
    wait: bool = False,
    max_invalid_pct: float | None = None,
    resolver: UserResolver | None = None,
    collect_users: bool = False,
) -> State:
    """Dry run (no client) or delivery of the plan's sources, with a run-summary artifact.

    The flow run ends Failed when the share of invalid + failed rows exceeds ``max_invalid_pct``
    or the run was aborted, so Prefect notifications and automations can act on it.
    """
    if client is None:
        report = await asyncio.to_thread(
            dry_run,
            plan,
            out=out,
            target=settings.target,
            check=check_chunk_task,
            ledger=ledger,
            rate_limit=settings.rate_limit,
            collect_users=collect_users,
        )
    else:
        assert ledger is not None
        report = await deliver_run(
            plan,
            client,
            ledger,
            out=out,
            target=settings.target,
            stop=stop,
            wait=wait,
            check=check_chunk_task,
            resolver=resolver,
        )
    report.max_invalid_pct = max_invalid_pct
    await acreate_markdown_artifact(
        key="lms-sync-run-summary",
        markdown=summary_markdown(report),
        description=f"lms-sync {report.mode} {report.run_id}",
    )
    if report.aborted:
        return Failed(message=f"run stopped early: {report.aborted}", data=report)
    if max_invalid_pct is not None and report.exit_code():
        share = report.problem_share() * 100
        return Failed(
            message=f"{share:.2f}% of rows invalid or failed > {max_invalid_pct}%", data=report
        )
    return Completed(data=report)


def summary_markdown(report: RunReport) -> str:
    """The run summary a person reads at a glance: outcomes, reasons, throughput, files."""
    summary = report.as_dict()
    requests = summary["requests"]
    lines = [
        f"# lms-sync {summary['mode'].replace('_', ' ')} {summary['run_id']}",
        "",
        f"Target `{summary['target']}` · rows read **{summary['rows_read']:,}** · "
        f"{summary['rows_per_second']:,} rows/s · requests {requests['sent']:,} "
        f"({requests['per_second']}/s, {requests['status_429']} x 429, {requests['retries']} retries)",
        "",
        "| outcome | rows |",
        "|---|---:|",
        *[f"| {name} | {count:,} |" for name, count in summary["outcomes"].items()],
        "",
    ]
    if summary["reasons"]:
        lines += ["| reason | rows |", "|---|---:|"]
        lines += [f"| {code} | {count:,} |" for code, count in summary["reasons"].items()]
        lines.append("")
    if summary["aborted"]:
        lines.append(f"**Stopped early:** {summary['aborted']}")
    lines.append(
        f"Dead-letter: `{summary['deadletter'].get('csv', '')}` · run folder `{report.folder}`"
    )
    return "\n".join(lines)


async def _run_file(
    path: Path, spec: MappingSpec, settings: Settings, options: RunOptions
) -> RunReport:
    """One file as its own (sub)flow run: the unit a nightly sync or backfill resumes by."""
    plan = plan_run([str(path)], spec, settings.account_id)
    return await execute_async(plan, settings, replace(options, use_prefect=True))


async def _run_job(
    job: str, files: list[Path], mapping: Path, options: RunOptions, api_key_block: str | None
) -> JobSummary:
    logger = get_run_logger()
    settings = await settings_with_secret(load_settings(), api_key_block)
    spec = load_mapping(mapping, dict(os.environ))  # a flow is an entry point: the edge

    async def run_one(path: Path, file_options: RunOptions) -> RunReport:
        return await _run_file(path, spec, settings, file_options)

    summary = await run_files(job, files, spec, settings, options, run_one, logger.info)
    await acreate_markdown_artifact(
        key=f"lms-sync-{job.replace('_', '-')}",
        markdown=job_markdown(summary),
        description=f"lms-sync {job}",
    )
    return summary


@flow(name="nightly_sync", flow_run_name="nightly {landing}", validate_parameters=False)
async def nightly_sync(
    landing: str,
    mapping: str,
    out: str | None = None,
    ledger: str = str(DEFAULT_LEDGER),
    dry_run: bool = False,
    max_invalid_pct: float | None = None,
    api_key_block: str | None = None,
) -> State:
    """Process the exports in a landing directory (or glob) not processed before, oldest first."""
    options = RunOptions(
        Path(out) if out else None, dry_run, Path(ledger), max_invalid_pct=max_invalid_pct
    )
    summary = await _run_job(
        "nightly_sync", landing_files(landing), Path(mapping), options, api_key_block
    )
    return _job_state(summary)


@flow(name="backfill", flow_run_name="backfill {mapping}", validate_parameters=False)
async def backfill(
    sources: list[str],
    mapping: str,
    out: str | None = None,
    ledger: str = str(DEFAULT_LEDGER),
    dry_run: bool = False,
    max_invalid_pct: float | None = None,
    api_key_block: str | None = None,
) -> State:
    """Deliver many files (or a partitioned directory), one subflow per file; rerun to resume."""
    options = RunOptions(
        Path(out) if out else None, dry_run, Path(ledger), max_invalid_pct=max_invalid_pct
    )
    files = backfill_files(sources)
    summary = await _run_job("backfill", files, Path(mapping), options, api_key_block)
    return _job_state(summary)


def _job_state(summary: JobSummary) -> State:
    code = summary.exit_code()
    if code == 3:
        return Failed(message="a run was stopped early; rerun to resume", data=summary)
    if code == 1:
        return Failed(message="rows were dead-lettered (see the run summaries)", data=summary)
    return Completed(data=summary)


def job_markdown(summary: JobSummary) -> str:
    """A job's summary: one line per file run, skipped and unstarted files."""
    lines = [
        f"# lms-sync {summary.job}",
        "",
        "| file | run | delivered / would send | duplicate | skipped | invalid | failed | pending |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for report in summary.reports:
        o = report.outcomes
        sent = o.get("delivered", 0) + o.get("would_send", 0)
        lines.append(
            f"| {Path(report.sources[0]).name} | {report.run_id} | {sent:,} | {o.get('duplicate', 0):,} | "
            f"{o.get('skipped', 0):,} | {o.get('invalid', 0):,} | {o.get('failed', 0):,} | {o.get('pending', 0):,} |"
        )
    if summary.already_processed:
        lines += [
            "",
            f"Already processed, skipped: {', '.join(Path(p).name for p in summary.already_processed)}",
        ]
    if summary.not_started:
        lines += [
            "",
            f"Not started (run stopped): {', '.join(Path(p).name for p in summary.not_started)}",
        ]
    return "\n".join(lines)
