"""Run a plan as plain functions: open the ledger, client and resolver, then dry-run or deliver.

The Prefect flows call the same ``run_plan`` (with their task as ``check``), so the plain path and
the Prefect path differ only in how they are recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from pipelines.api.client import StackOneClient
from pipelines.api.redaction import Redactor
from pipelines.api.shared_limiter import shared_limiter
from pipelines.api.user_lookup import UserResolver, check_remote
from pipelines.core.errors import SettingsError
from pipelines.core.settings import RunOptions, Settings
from pipelines.output.remote_folder import upload_folder
from pipelines.output.report import RunReport
from pipelines.run.chunks import Chunk, check_chunk
from pipelines.run.crash_recording import Redact
from pipelines.run.delivery import deliver_run
from pipelines.run.dryrun import dry_run
from pipelines.run.leases import lease_for
from pipelines.run.plan import RunPlan
from pipelines.run.run_log import RunHooks, log_outcome, log_start
from pipelines.state.ledger import Ledger
from pipelines.state.state_migrations import state_exists
from pipelines.state.user_cache import UserCache
from transforms.validation import CheckedRows

Check = Callable[[Chunk, RunPlan, datetime], CheckedRows]
OnReport = Callable[[RunReport], None]


def execute(plan: RunPlan, settings: Settings, options: RunOptions) -> RunReport:
    """Run ``plan`` in a new event loop; SIGINT/SIGTERM stop a delivering run in order."""
    return asyncio.run(run_plan(plan, settings, options))


def require_api_key(settings: Settings, options: RunOptions) -> None:
    """Delivering (or checking users remotely) needs an API key: say so before anything starts."""
    if (not options.dry_run or options.check_remote) and settings.api_key is None:
        raise SettingsError(
            "STACKONE_API_KEY is not set; it is needed to deliver (or use --dry-run)"
        )


def redactor(settings: Settings) -> Redact | None:
    """What cleans a crash's text of the API key (None when there is no key)."""
    return Redactor(settings.api_key) if settings.api_key is not None else None


async def run_plan(
    plan: RunPlan,
    settings: Settings,
    options: RunOptions,
    *,
    check: Check = check_chunk,
    on_report: OnReport | None = None,
    hooks: RunHooks | None = None,
) -> RunReport:
    """Dry run or delivery of ``plan``; ``on_report`` gets the live report (a progress line),
    ``hooks`` the log lines (start, files, progress, outcome) and the delivery slices."""
    require_api_key(settings, options)
    hooks = hooks or RunHooks()
    log_start(hooks.log, plan, settings, options)
    if options.dry_run:
        report = await _dry(plan, settings, options, check, on_report, hooks)
        if options.check_remote:
            report.remote_check = await _check_remote(plan, settings, options, report)
            assert report.folder is not None
            report.write(report.folder / "report.json")
    else:
        report = await _deliver(plan, settings, options, check, on_report, hooks)
    report.max_invalid_pct = options.max_invalid_pct
    if options.remote_out and report.folder is not None:
        report.moved_to(options.remote_out)
        upload_folder(report.folder, options.remote_out)
    log_outcome(hooks.log, report)
    return report


async def _dry(
    plan: RunPlan,
    settings: Settings,
    options: RunOptions,
    check: Check,
    on_report: OnReport | None,
    hooks: RunHooks,
) -> RunReport:
    # A dry run reads the ledger (to leave out what was delivered) but never writes it.
    ledger = Ledger(options.state, settings.target) if state_exists(options.state) else None
    with ledger if ledger is not None else contextlib.nullcontext():
        return await asyncio.to_thread(
            dry_run,
            plan,
            out=options.out,
            target=settings.target,
            check=check,
            ledger=ledger,
            rate_limit=settings.rate_limit,
            concurrency=settings.concurrency,
            on_report=on_report,
            collect_users=options.check_remote,
            redact=redactor(settings),
            log=hooks.log,
        )


async def _check_remote(
    plan: RunPlan, settings: Settings, options: RunOptions, report: RunReport
) -> dict[str, object]:
    """Look up each distinct account, then user, of the dry run once; the accounts the key
    cannot reach and the users missing go in the report."""
    async with StackOneClient.from_settings(settings) as client:
        with UserCache(options.state, settings.target, read_only=True) as cache:
            resolver = UserResolver(client, cache)
            return await check_remote(resolver, plan.spec.user.resolve_by, report.distinct_users)


async def _deliver(
    plan: RunPlan,
    settings: Settings,
    options: RunOptions,
    check: Check,
    on_report: OnReport | None,
    hooks: RunHooks,
) -> RunReport:
    async with _stop_on_signals() as stop:
        with (
            Ledger(options.state, settings.target) as ledger,
            UserCache(options.state, settings.target) as cache,
            shared_limiter(settings, options.state) as limiter,
        ):
            async with StackOneClient.from_settings(settings, limiter=limiter) as client:
                return await deliver_run(
                    plan,
                    client,
                    ledger,
                    out=options.out,
                    target=settings.target,
                    stop=stop,
                    check=check,
                    resolver=UserResolver(client, cache),
                    on_report=on_report,
                    resend_in_doubt=options.resend_in_doubt,
                    redact=redactor(settings),
                    hooks=hooks,
                    lease_seconds=lease_for(settings.connect_timeout + settings.read_timeout),
                )


@contextlib.asynccontextmanager
async def _stop_on_signals() -> AsyncIterator[asyncio.Event]:
    """An event set by SIGINT/SIGTERM while the block runs (an orderly stop, not a crash)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Only the main thread's loop can handle signals; elsewhere the host (a worker) stops us.
        with contextlib.suppress(ValueError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
            handled.append(signum)
    try:
        yield stop
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
