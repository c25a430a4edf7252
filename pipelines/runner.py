"""Runs a plan the way the situation asks: dry or delivering, plain functions or a Prefect flow."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from pipelines.errors import SettingsError
from pipelines.ledger import Ledger
from pipelines.progress import live_progress
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


@dataclass(frozen=True)
class RunOptions:
    """How to run a plan (everything but the plan and the settings)."""

    out: Path | None = None
    dry_run: bool = False
    ledger_path: Path = DEFAULT_LEDGER
    wait: bool = False
    use_prefect: bool = False
    max_invalid_pct: float | None = None
    check_remote: bool = False
    progress: bool = False  # a live progress line (terminal only)


def use_prefect_defaults() -> None:
    """Quiet, fast defaults for Prefect's temporary server (set before Prefect is imported)."""
    for name, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(name, value)


def execute(plan: RunPlan, settings: Settings, options: RunOptions) -> RunReport:
    """Run ``plan``; SIGINT/SIGTERM stop a delivering run in order (report written, rest pending)."""
    if (not options.dry_run or options.check_remote) and settings.api_key is None:
        raise SettingsError(
            "STACKONE_API_KEY is not set; it is needed to deliver (or use --dry-run)"
        )
    if options.use_prefect:
        use_prefect_defaults()
    return asyncio.run(execute_async(plan, settings, options))


async def execute_async(plan: RunPlan, settings: Settings, options: RunOptions) -> RunReport:
    """``execute`` inside a running event loop (flows that run several plans call this)."""
    if options.dry_run:
        report = await _dry(plan, settings, options)
        if options.check_remote:
            report.remote_check = await _check_remote(plan, settings, options, report)
            assert report.folder is not None
            report.write(report.folder / "report.json")
    else:
        report = await _deliver(plan, settings, options)
    report.max_invalid_pct = options.max_invalid_pct
    return report


async def _dry(plan: RunPlan, settings: Settings, options: RunOptions) -> RunReport:
    # A dry run reads the ledger (to leave out what was delivered) but never writes it.
    ledger = Ledger(options.ledger_path, settings.target) if options.ledger_path.exists() else None
    with ledger if ledger is not None else contextlib.nullcontext():
        if options.use_prefect:
            from pipelines.flows import sync_completions

            state = await sync_completions(
                plan,
                out=options.out,
                settings=settings,
                ledger=ledger,
                max_invalid_pct=options.max_invalid_pct,
                collect_users=options.check_remote,
                return_state=True,
            )
            return await _report_of(state)
        from pipelines.dryrun import dry_run

        async with live_progress(options.progress, settings.rate_limit) as hook:
            return await asyncio.to_thread(
                dry_run,
                plan,
                out=options.out,
                target=settings.target,
                ledger=ledger,
                rate_limit=settings.rate_limit,
                on_report=hook,
                collect_users=options.check_remote,
            )


async def _check_remote(
    plan: RunPlan, settings: Settings, options: RunOptions, report: RunReport
) -> dict[str, object]:
    """Look up each distinct user of the dry run once; the ones missing go in the report."""
    from pipelines.client import StackOneClient
    from pipelines.users import UserCache, UserResolver, check_remote

    async with StackOneClient.from_settings(settings) as client:
        with UserCache(options.ledger_path.with_name("users.sqlite"), settings.target) as cache:
            resolver = UserResolver(client, cache)
            return await check_remote(resolver, plan.spec.user.resolve_by, report.distinct_users)


async def _deliver(plan: RunPlan, settings: Settings, options: RunOptions) -> RunReport:
    from pipelines.client import StackOneClient
    from pipelines.delivery import deliver_run
    from pipelines.users import UserCache, UserResolver

    options.ledger_path.parent.mkdir(parents=True, exist_ok=True)
    async with _stop_on_signals() as stop:
        with (
            Ledger(options.ledger_path, settings.target) as ledger,
            UserCache(options.ledger_path.with_name("users.sqlite"), settings.target) as cache,
        ):
            async with StackOneClient.from_settings(settings) as client:
                resolver = UserResolver(client, cache)
                if options.use_prefect:
                    from pipelines.flows import sync_completions

                    state = await sync_completions(
                        plan,
                        out=options.out,
                        settings=settings,
                        client=client,
                        ledger=ledger,
                        stop=stop,
                        wait=options.wait,
                        max_invalid_pct=options.max_invalid_pct,
                        resolver=resolver,
                        return_state=True,
                    )
                    return await _report_of(state)
                async with live_progress(options.progress, settings.rate_limit) as hook:
                    return await deliver_run(
                        plan,
                        client,
                        ledger,
                        out=options.out,
                        target=settings.target,
                        stop=stop,
                        wait=options.wait,
                        resolver=resolver,
                        on_report=hook,
                    )


async def settings_with_secret(settings: Settings, block_name: str | None) -> Settings:
    """Settings whose API key comes from the named Prefect Secret block, when one is named."""
    if block_name is None:
        return settings
    from prefect.blocks.system import Secret

    secret: Secret = await Secret.aload(block_name)  # type: ignore[assignment]
    return settings.model_copy(update={"api_key": SecretStr(str(secret.get()))})


async def _report_of(state: Any) -> RunReport:
    """The RunReport a flow run left in its (Completed or Failed) state; re-raise a crash."""
    result = await state.result(raise_on_failure=False)
    if isinstance(result, RunReport):
        return result
    if isinstance(result, BaseException):
        raise result
    raise RuntimeError(f"flow run ended {state.type.value} without a report: {state.message}")


@contextlib.asynccontextmanager
async def _stop_on_signals() -> AsyncIterator[asyncio.Event]:
    """An event set by SIGINT/SIGTERM while the block runs (an orderly stop, not a crash)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        yield stop
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
