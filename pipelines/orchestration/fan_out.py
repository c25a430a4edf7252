"""A deployed job spread over its work pool: each file's run is a flow run of the
``sync_completions/sync-completions`` deployment, linked as a subflow and picked up by any worker
of that deployment's pool, ``parallel`` at a time, all sharing the key's rate budget.

A deployment's flow run keeps its result only in the process that ran it (nothing is persisted
unless the workers share a result storage), so the parent reads each child's ``report.json``
back from the run folder it named for it: ``out`` in a bucket, or a folder every worker shares.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import arun_deployment
from prefect.exceptions import ObjectNotFound
from prefect.runtime import deployment

from pipelines.core.errors import SourceError
from pipelines.core.settings import RunOptions
from pipelines.output.report import RunReport
from pipelines.output.report_file import load_report
from pipelines.run.jobs import RunOne
from pipelines.run.request import RunRequest
from pipelines.source.object_store import origin_url

__all__ = ["CHILD_DEPLOYMENT", "deployed_runner"]

CHILD_DEPLOYMENT = "sync_completions/sync-completions"
POLL_SECONDS = 2.0
CLOCK_SKEW = timedelta(seconds=5)  # a report started before its flow run was created is stale

Log = logging.Logger | logging.LoggerAdapter[Any]


async def deployed_runner(
    request: RunRequest, api_key_block: str | None, parallel: int, log: Log
) -> RunOne | None:
    """How a file runs as a flow run of ``CHILD_DEPLOYMENT``; None (subflows in this process)
    unless this flow run comes from a deployment, ``parallel`` > 1, the job has an ``out``
    (where the children's reports can be read back) and the deployment exists."""
    if parallel <= 1 or deployment.id is None:
        return None
    local = "the files run as subflows in this flow run's process"
    if request.out is None:
        log.warning(
            "parallel %d without `out`: %s (give `out`, a bucket URL or a folder every worker "
            "shares, to spread them over the workers of the pool)", parallel, local,
        )  # fmt: skip
        return None
    try:
        async with get_client() as client:
            await client.read_deployment_by_name(CHILD_DEPLOYMENT)
    except ObjectNotFound:
        log.warning("no deployment %s: %s", CHILD_DEPLOYMENT, local)
        return None
    log.info("parallel %d: each file a flow run of %s", parallel, CHILD_DEPLOYMENT)

    async def run_one(path: Path, options: RunOptions) -> RunReport:
        file_request = request.for_file(path, options)
        assert file_request.out is not None  # the job's ``out`` names a folder per file
        parameters = {
            **file_request.parameters(),
            "sources": [origin_url(path) or str(path)],  # a bucket object: its URL, not our copy
            "api_key_block": api_key_block,
        }
        child = await arun_deployment(
            CHILD_DEPLOYMENT, parameters=parameters, as_subflow=True, poll_interval=POLL_SECONDS
        )
        return child_report(child, file_request.out, options.max_invalid_pct)

    return run_one


def child_report(child: FlowRun, folder: str, max_invalid_pct: float | None) -> RunReport:
    """The report a finished child flow run left in ``folder``; an error when it crashed, was
    cancelled or left no report of its own (an older report there is not taken for it)."""
    state = child.state
    ended = f"flow run {child.name} ended {state.name if state else 'without a state'}"
    if state is None or not (state.is_completed() or state.is_failed()):
        raise RuntimeError(f"{ended}: {state.message if state else ''}")
    try:
        report = load_report(folder, max_invalid_pct)
    except SourceError as exc:
        raise RuntimeError(f"{ended} ({state.message}) and left no report: {exc}") from None
    if child.created is not None and report.started_at < child.created - CLOCK_SKEW:
        raise RuntimeError(f"{ended} ({state.message}); {folder} holds an older run's report")
    return report
