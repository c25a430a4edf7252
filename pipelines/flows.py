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

from pipelines.client import StackOneClient
from pipelines.delivery import deliver_run
from pipelines.dryrun import dry_run
from pipelines.ledger import Ledger
from pipelines.report import RunReport
from pipelines.steps import Chunk, RunPlan, check_chunk
from transforms.validation import CheckedRows


@task(
    name="check_chunk",
    task_run_name="check {chunk.source.name} rows {chunk.first_ordinal}+",
    cache_policy=NO_CACHE,
)
def check_chunk_task(chunk: Chunk, plan: RunPlan, now: datetime) -> CheckedRows:
    """Convert and validate one chunk (pure and cheap: no retries needed)."""
    return check_chunk(chunk, plan, now)


@flow(name="sync_completions", validate_parameters=False)
async def sync_completions(
    plan: RunPlan,
    *,
    out: Path | None,
    target: str,
    client: StackOneClient | None = None,
    ledger: Ledger | None = None,
    stop: asyncio.Event | None = None,
    wait: bool = False,
) -> RunReport:
    """Dry run (no client) or delivery of the plan's sources; publishes a run-summary artifact."""
    if client is None or ledger is None:
        report = await asyncio.to_thread(
            dry_run, plan, out=out, target=target, check=check_chunk_task
        )
    else:
        report = await deliver_run(
            plan,
            client,
            ledger,
            out=out,
            target=target,
            stop=stop,
            wait=wait,
            check=check_chunk_task,
        )
    await acreate_markdown_artifact(
        key="lms-sync-run-summary",
        markdown=summary_markdown(report),
        description=f"lms-sync {report.mode} {report.run_id}",
    )
    return report


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
