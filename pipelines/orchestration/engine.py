"""The engine choice: a run or a job as plain functions, or as Prefect flow runs.

Prefect is imported only when a flow runs (a lazy import kept for start-up time: an ad hoc dry run
starts in about a second without it, 10-20 s with Prefect's temporary server).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipelines.core.settings import RunOptions, use_prefect_defaults
from pipelines.output.report import RunReport
from pipelines.run.execute import OnReport, run_plan
from pipelines.run.jobs import JobSummary, job_files, run_files
from pipelines.run.request import RunRequest

Say = Callable[[str], None]


async def execute_request(
    request: RunRequest,
    *,
    use_prefect: bool = False,
    api_key_block: str | None = None,
    on_report: OnReport | None = None,
) -> RunReport:
    """Run one request: the ``sync_completions`` flow, or the same steps as plain functions."""
    if use_prefect or api_key_block or request.state_block:
        use_prefect_defaults()
        from pipelines.orchestration.flows import sync_completions  # lazy: start-up time
        from pipelines.orchestration.states import result_of  # lazy: imports Prefect

        parameters = {**request.parameters(), "api_key_block": api_key_block}
        state = await sync_completions(**parameters, return_state=True)
        return await result_of(state, RunReport)
    settings = request.settings()
    return await run_plan(
        request.plan(settings), settings, request.options(settings), on_report=on_report
    )


async def execute_job(
    job: str,
    patterns: list[str],
    request: RunRequest,
    *,
    use_prefect: bool = False,
    api_key_block: str | None = None,
    say: Say = print,
    parallel: int = 1,
) -> JobSummary:
    """A nightly sync or backfill: the job's flow, or one plain run per file."""
    if use_prefect or api_key_block or request.state_block:
        use_prefect_defaults()
        from pipelines.orchestration.flows import job_flow  # lazy: start-up time
        from pipelines.orchestration.states import result_of  # lazy: imports Prefect

        state = await job_flow(job, patterns, request, api_key_block, parallel)
        return await result_of(state, JobSummary)
    settings = request.settings()
    spec = request.spec()

    async def run_one(path: Path, options: RunOptions) -> RunReport:
        return await execute_request(request.for_file(path, options))

    files = job_files(job, patterns)
    options = request.options(settings)
    return await run_files(job, files, spec, settings, options, run_one, say, parallel)
