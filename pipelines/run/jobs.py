"""The jobs people run: nightly sync of a landing directory, backfill of many files (DESIGN §1).

Both process one file per run (a subflow under Prefect), skip files whose content fingerprint the
target has already processed to the end, and stop at the first run that was aborted. A file is
marked processed only when its run left nothing pending, so a rerun picks up where a crash or a
stop left off; rows delivered before are never sent again (the ledger).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from pipelines.core.errors import SourceError
from pipelines.core.settings import RunOptions, Settings
from pipelines.output.report import RunReport
from pipelines.run.dryrun import count_would_send
from pipelines.run.job_progress import JobProgress
from pipelines.run.plan import plan_run
from pipelines.source.fingerprints import fingerprint
from pipelines.source.object_store import exists, is_url, staged
from pipelines.source.source_breaks import INCOMPLETE_SOURCE
from pipelines.source.source_files import SOURCE_SUFFIXES, expand_sources
from pipelines.state.ledger import Ledger
from pipelines.state.processed_exports import ProcessedExports
from pipelines.state.state_migrations import state_exists
from transforms.mapping import MappingSpec

# The per-file table of a job: "sent" is delivered (or would_send in a dry run).
JOB_COLUMNS = ("file", "run", "sent", "duplicate", "skipped", "invalid", "failed", "pending")
RunOne = Callable[[Path, RunOptions], Awaitable[RunReport]]
Say = Callable[[str], None]
OnFile = Callable[[Path, RunReport], None]  # a file's run has ended (e.g. a progress artifact)


@dataclass
class JobSummary:
    """What a job did with each file."""

    job: str
    reports: list[RunReport] = field(default_factory=list)
    already_processed: list[str] = field(default_factory=list)
    not_started: list[str] = field(default_factory=list)

    def table(self) -> list[tuple[str, ...]]:
        """One row per file run under ``JOB_COLUMNS`` (the terminal table and the artifact)."""
        rows = []
        for report in self.reports:
            o = report.outcomes
            counts = [o.get("delivered", 0) + o.get("would_send", 0)]
            counts += [o.get(name, 0) for name in JOB_COLUMNS[3:]]
            rows.append((Path(report.sources[0]).name, report.run_id, *(f"{n:,}" for n in counts)))
        return rows

    def exit_code(self) -> int:
        """The most severe exit code of the job's runs (3 before 1 before 0)."""
        codes = [report.exit_code() for report in self.reports]
        return 3 if 3 in codes else max(codes, default=0)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready summary: per-file run ids and outcomes."""
        return {
            "job": self.job,
            "runs": [
                {
                    "source": report.sources[0],
                    "run_id": report.run_id,
                    "outcomes": report.as_dict()["outcomes"],
                    "aborted": report.aborted,
                    "folder": report.location or str(report.folder),
                }
                for report in self.reports
            ],
            "already_processed": self.already_processed,
            "not_started": self.not_started,
        }


def landing_files(pattern: str) -> list[Path]:
    """Export files of a landing directory or glob, oldest first (modification time, then name).

    An existing landing directory (or bucket prefix) with nothing in it is a quiet night (no
    files), not an error.
    """
    if is_url(pattern):
        return sorted(
            staged(pattern, SOURCE_SUFFIXES, empty_ok=True),
            key=lambda p: (p.stat().st_mtime, p.name),
        )
    try:
        found = expand_sources([pattern])
    except SourceError:
        if _landing_directory(pattern).is_dir():
            return []
        raise
    return sorted(found, key=lambda p: (p.stat().st_mtime, p.name))


def job_files(job: str, patterns: list[str]) -> list[Path]:
    """The files of a job: a nightly sync's landing files, or a backfill's."""
    return landing_files(patterns[0]) if job == "nightly_sync" else backfill_files(patterns)


def backfill_files(patterns: list[str]) -> list[Path]:
    """The files of a backfill in path order; a directory counts with all its partitions.

    ``exports/`` holding ``year=2024/month=01/part-0.parquet`` … yields every partition file;
    names starting with ``.`` or ``_`` (``_SUCCESS``, ``_temporary/``, ``.crc``) are left out.
    """
    expanded: list[str] = []
    for pattern in patterns:
        nested = _partition_files(Path(pattern)) if Path(pattern).is_dir() else []
        expanded.extend([str(path) for path in nested] or [pattern])
    return sorted(expand_sources(expanded))


def finished(report: RunReport) -> bool:
    """A file's run left nothing for a later run: nothing pending, no failure still retried.

    Failed rows are retried by later runs (DESIGN §7) until they are ``gave_up``; a file is
    marked processed only then, so a nightly job keeps retrying a row whose user was missing.
    A file that broke off mid-file (truncated or corrupt) is never finished: it is read again.
    """
    outcomes = report.outcomes
    retried = outcomes.get("failed", 0) - report.reasons.get("gave_up", 0)
    broke_off = any(name.split(":")[0] == INCOMPLETE_SOURCE for name in report.warnings)
    return not report.aborted and outcomes.get("pending", 0) == 0 and retried <= 0 and not broke_off


async def run_files(
    job: str,
    files: list[Path],
    spec: MappingSpec,
    settings: Settings,
    options: RunOptions,
    run_one: RunOne,
    say: Say,
    parallel: int = 1,
    on_file: OnFile | None = None,
) -> JobSummary:
    """Run every file not processed before, one run each, in order (``parallel`` at a time, all
    sharing the key's rate budget); after an aborted run no further file is started.

    Files with the same content (a copy under another name) run once. Under ``--out`` each
    file's run gets its own folder named after the file (``-2``, ``-3`` … when taken). A dry run
    reads the processed-exports table but never writes (or creates) it.
    """
    summary = JobSummary(job)
    with ProcessedExports(options.state, settings.target, read_only=options.dry_run) as registry:
        todo: list[tuple[Path, str]] = []
        copies: list[tuple[Path, str]] = []
        first_of: dict[str, Path] = {}
        for path in files:
            print_ = fingerprint(path)
            done_by = registry.seen(print_)
            if done_by:
                summary.already_processed.append(str(path))
                say(f"{path.name}: already processed by run {done_by}, skipped")
            elif print_ in first_of:
                copies.append((path, print_))
                say(f"{path.name}: same content as {first_of[print_].name}, skipped")
            else:
                first_of[print_] = path
                todo.append((path, print_))
        # A backfill's ETA needs the requests of every file up front: a pass over all of them.
        # A nightly job reads its files once (its run logs progress while it sends).
        requests = _requests_to_send(todo, spec, settings, options) if job == "backfill" else None
        budget = JobProgress(say, settings, requests)
        ran = await _run_todo(
            todo, options, run_one, summary, registry, budget, say, parallel, on_file
        )
        for path, print_ in copies:
            (summary.already_processed if print_ in ran else summary.not_started).append(str(path))
    return summary


async def _run_todo(
    todo: list[tuple[Path, str]],
    options: RunOptions,
    run_one: RunOne,
    summary: JobSummary,
    registry: ProcessedExports,
    budget: JobProgress,
    say: Say,
    parallel: int,
    on_file: OnFile | None,
) -> set[str]:
    """Run the files, at most ``parallel`` at once, in order; the fingerprints run."""
    ran: set[str] = set()  # fingerprints run by this job: their copies need no run
    taken: set[Path] = set()
    turns = asyncio.Semaphore(max(1, parallel))
    stopped: list[str] = []

    async def one(path: Path, print_: str) -> None:
        async with turns:
            if stopped:
                summary.not_started.append(str(path))
                return
            report = await run_one(path, replace(options, out=_file_folder(options, path, taken)))
        summary.reports.append(report)
        budget.after(path, report, len(summary.reports), len(todo))
        if on_file is not None:
            on_file(path, report)
        if report.aborted:
            stopped.append(report.aborted)
            return
        ran.add(print_)
        if finished(report) and not options.dry_run:
            registry.mark(print_, path, report.run_id, report.rows_read)

    await asyncio.gather(*(one(path, print_) for path, print_ in todo))
    if stopped:
        say(f"stopped: {stopped[0]}; {len(summary.not_started)} file(s) not started")
    return ran


def _partition_files(folder: Path) -> list[Path]:
    """Export files anywhere under ``folder``, leaving out hidden and ``_``-prefixed names."""
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file()
        and path.name.lower().endswith(SOURCE_SUFFIXES)
        and not any(part[:1] in (".", "_") for part in path.relative_to(folder).parts)
    )


def _landing_directory(pattern: str) -> Path:
    """The directory part of a landing pattern: the path up to its first wildcard."""
    parts = Path(pattern).parts
    plain = list(itertools.takewhile(lambda part: not any(c in part for c in "*?["), parts))
    return Path(*plain) if plain else Path(".")


def _file_folder(options: RunOptions, path: Path, taken: set[Path]) -> Path | None:
    """The run folder of one file under ``out``: its name, suffixed when another run has it
    (here, or in the bucket when ``out`` is a bucket URL: a rerun never overwrites a run)."""
    out, bucket = options.out, options.remote_out
    if out is None:
        return None
    name = Path(path.name.removesuffix(".gz").removesuffix(".GZ")).stem
    folder, n = out / name, 1
    while (
        folder in taken
        or folder.exists()
        or (bucket is not None and exists(f"{bucket.rstrip('/')}/{folder.name}"))
    ):
        n += 1
        folder = out / f"{name}-{n}"
    taken.add(folder)
    return folder


def _requests_to_send(
    todo: list[tuple[Path, str]], spec: MappingSpec, settings: Settings, options: RunOptions
) -> int:
    """Requests the files still need (after dedupe against the ledger): the basis of the ETA."""
    if not todo:
        return 0
    plan = plan_run([str(p) for p, _ in todo], spec, settings.account_id)
    if not state_exists(options.state):
        return count_would_send(plan, None)
    with Ledger(options.state, settings.target) as ledger:
        return count_would_send(plan, ledger)
