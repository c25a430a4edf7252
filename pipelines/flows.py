"""Prefect flows: the same steps as the plain run, recorded as flow and task runs.

Imported only when a Prefect server is configured (PREFECT_API_URL) or asked for (--prefect,
demo): Prefect's import and temporary server cost seconds that an ad hoc dry run should not pay.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import acreate_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State

from pipelines.client import StackOneClient
from pipelines.delivery import deliver_run
from pipelines.dryrun import dry_run
from pipelines.ledger import Ledger
from pipelines.report import RunReport
from pipelines.settings import Settings
from pipelines.steps import Chunk, RunPlan, check_chunk
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
