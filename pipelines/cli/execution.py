"""How a command runs a request: engine choice (plain or Prefect) and the live progress line."""

from __future__ import annotations

import asyncio

from pydantic import ValidationError

from pipelines.cli.console import (
    EXIT_ABORTED,
    console,
    crash_message,
    fail,
    print_summary,
    settings_error,
)
from pipelines.cli.progress import live_progress
from pipelines.core.outcomes import RunStatus
from pipelines.core.settings import DEFAULT_RUNS_DIR, prefect_api_configured
from pipelines.orchestration.engine import execute_request
from pipelines.output.report import RunReport
from pipelines.output.retention import prune_runs
from pipelines.run.execute import require_api_key
from pipelines.run.request import RunRequest
from transforms.errors import LmsSyncError


def run_request(
    request: RunRequest,
    *,
    prefect: bool = False,
    progress: bool = False,
    api_key_block: str | None = None,
) -> RunReport:
    """Run ``request`` as a Prefect flow (``--prefect`` or ``PREFECT_API_URL``) or as plain steps.

    Settings and the API key are checked first, before Prefect's server start costs seconds.
    """
    settings = request.settings()
    options = request.options(settings)  # SettingsError: --ledger and a state URL both given
    if api_key_block is None:
        require_api_key(settings, options)
    use_prefect = prefect or prefect_api_configured()
    show = progress and console.is_terminal and not use_prefect

    async def run() -> RunReport:
        async with live_progress(show, settings.rate_limit) as hook:
            return await execute_request(
                request, use_prefect=use_prefect, api_key_block=api_key_block, on_report=hook
            )

    return asyncio.run(run())


def run_and_summarise(
    request: RunRequest, *, prefect: bool, quiet: bool, json_output: bool, keep_runs: int | None
) -> RunReport:
    """``run``/``replay``: run the request, prune old run folders, print the summary.

    A run-level error (mapping, settings, lock, abort before the run) exits with its code; a
    crashed run exits 3 after one line naming the error and its saved traceback.
    """
    try:
        report = run_request(request, prefect=prefect, progress=not (quiet or json_output))
        if keep_runs is not None:
            prune_runs(DEFAULT_RUNS_DIR, keep_runs)
    except LmsSyncError as exc:
        fail(str(exc), exc.exit_code)
    except ValidationError as exc:
        fail(settings_error(exc))
    if not quiet:
        print_summary(report.as_dict(), report.folder, json_output)
    if report.status is RunStatus.CRASHED:
        fail(crash_message(report), EXIT_ABORTED)
    return report
