"""How a command runs a request: engine choice (plain or Prefect) and the live progress line."""

from __future__ import annotations

import asyncio

from pipelines.cli.console import console
from pipelines.cli.progress import live_progress
from pipelines.core.settings import prefect_api_configured
from pipelines.orchestration.engine import execute_request
from pipelines.output.report import RunReport
from pipelines.run.execute import require_api_key
from pipelines.run.request import RunRequest


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
    if api_key_block is None:
        require_api_key(settings, request.options())
    use_prefect = prefect or prefect_api_configured()
    show = progress and console.is_terminal and not use_prefect

    async def run() -> RunReport:
        async with live_progress(show, settings.rate_limit) as hook:
            return await execute_request(
                request, use_prefect=use_prefect, api_key_block=api_key_block, on_report=hook
            )

    return asyncio.run(run())
