"""Prefect flows: the same steps as the plain run, recorded as flow and task runs.

Imported only when a Prefect server is configured (PREFECT_API_URL) or asked for (--prefect):
Prefect's import and temporary server cost seconds that an ad hoc dry run should not pay.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from pipelines.dryrun import dry_run
from pipelines.steps import Chunk, RunPlan, check_chunk
from transforms.validation import CheckedRows


@task(
    name="check_chunk",
    task_run_name="check {chunk.source.name} from row {chunk.first_ordinal}",
    cache_policy=NO_CACHE,
)
def check_chunk_task(chunk: Chunk, plan: RunPlan, now: datetime) -> CheckedRows:
    """Convert and validate one chunk (pure; safe to retry, but nothing to gain from it)."""
    return check_chunk(chunk, plan, now)


@flow(name="sync_completions", validate_parameters=False, log_prints=False)
def sync_completions(plan: RunPlan, out: Path | None, target: str) -> dict[str, Any]:
    """Dry run of the sources in ``plan``: payloads, dead-letter and report in the run folder."""
    report, folder = dry_run(plan, out=out, target=target, check=check_chunk_task)
    summary = report.as_dict()
    create_markdown_artifact(
        key="lms-sync-run-summary",
        markdown=_summary_markdown(summary, folder),
        description=f"lms-sync {summary['mode']} {summary['run_id']}",
    )
    return summary


def _summary_markdown(summary: dict[str, Any], folder: Path) -> str:
    lines = [
        f"# lms-sync {summary['mode']} {summary['run_id']}",
        "",
        f"Rows read: **{summary['rows_read']}** · {summary['rows_per_second']} rows/s",
        "",
        "| outcome | rows |",
        "|---|---|",
        *[f"| {name} | {count} |" for name, count in summary["outcomes"].items()],
        "",
        "| reason | rows |",
        "|---|---|",
        *[f"| {code} | {count} |" for code, count in summary["reasons"].items()],
        "",
        f"Run folder: `{folder}`",
    ]
    return "\n".join(lines)
