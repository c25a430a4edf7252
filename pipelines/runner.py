"""Runs a plan the way the situation asks: dry or delivering, plain functions or a Prefect flow."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from pipelines.errors import SettingsError
from pipelines.report import RunReport
from pipelines.settings import Settings
from pipelines.steps import RunPlan

DEFAULT_LEDGER = Path("data/state/ledger.sqlite")
# Prefect's temporary server: quiet, no UI, and enough time to start on a busy 2-core machine.
PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_UI_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_LOGGING_LEVEL": "WARNING",
}


def execute(
    plan: RunPlan,
    settings: Settings,
    *,
    out: Path | None,
    dry_run: bool,
    ledger_path: Path = DEFAULT_LEDGER,
    wait: bool = False,
    use_prefect: bool = False,
) -> RunReport:
    """Run ``plan``; SIGINT/SIGTERM stop a delivering run in order (report written, rest pending)."""
    if not dry_run and settings.api_key is None:
        raise SettingsError(
            "STACKONE_API_KEY is not set; it is needed to deliver (or use --dry-run)"
        )
    if use_prefect:
        for name, value in PREFECT_DEFAULTS.items():
            os.environ.setdefault(name, value)
    if dry_run and not use_prefect:
        from pipelines.dryrun import dry_run as run_dry

        return run_dry(plan, out=out, target=settings.target)
    return asyncio.run(_execute(plan, settings, out, dry_run, ledger_path, wait, use_prefect))


async def _execute(
    plan: RunPlan,
    settings: Settings,
    out: Path | None,
    dry_run: bool,
    ledger_path: Path,
    wait: bool,
    use_prefect: bool,
) -> RunReport:
    if dry_run:
        from pipelines.flows import sync_completions

        return await sync_completions(plan, out=out, target=settings.target)

    from pipelines.client import StackOneClient
    from pipelines.delivery import deliver_run
    from pipelines.ledger import Ledger

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        ledger_path.parent.mkdir(parents=True, exist_ok=True)
        with Ledger(ledger_path, settings.target) as ledger:
            async with StackOneClient.from_settings(settings) as client:
                if use_prefect:
                    from pipelines.flows import sync_completions

                    return await sync_completions(
                        plan,
                        out=out,
                        target=settings.target,
                        client=client,
                        ledger=ledger,
                        stop=stop,
                        wait=wait,
                    )
                return await deliver_run(
                    plan, client, ledger, out=out, target=settings.target, stop=stop, wait=wait
                )
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
