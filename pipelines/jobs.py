"""The jobs people run: nightly sync of a landing directory, backfill of many files (DESIGN §1).

Both process one file per run (a subflow under Prefect), skip files whose content fingerprint the
target has already processed to the end, and stop at the first run that was aborted. A file is
marked processed only when its run left nothing pending, so a rerun picks up where a crash or a
stop left off; rows delivered before are never sent again (the ledger).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from pipelines.dryrun import cost_estimate, count_would_send, human_duration
from pipelines.fingerprints import ProcessedExports, fingerprint
from pipelines.ledger import Ledger
from pipelines.readers import expand_sources
from pipelines.report import RunReport
from pipelines.runner import RunOptions
from pipelines.settings import Settings
from pipelines.steps import plan_run
from transforms.mapping import MappingSpec

RunOne = Callable[[Path, RunOptions], Awaitable[RunReport]]
Say = Callable[[str], None]


@dataclass
class JobSummary:
    """What a job did with each file."""

    job: str
    reports: list[RunReport] = field(default_factory=list)
    already_processed: list[str] = field(default_factory=list)
    not_started: list[str] = field(default_factory=list)

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
                    "folder": str(report.folder),
                }
                for report in self.reports
            ],
            "already_processed": self.already_processed,
            "not_started": self.not_started,
        }


def landing_files(pattern: str) -> list[Path]:
    """Export files of a landing directory or glob, oldest first (modification time, then name)."""
    return sorted(expand_sources([pattern]), key=lambda p: (p.stat().st_mtime, p.name))


async def run_files(
    job: str,
    files: list[Path],
    spec: MappingSpec,
    settings: Settings,
    options: RunOptions,
    run_one: RunOne,
    say: Say,
) -> JobSummary:
    """Run every file not processed before, one run each, in order; stop at an aborted run."""
    summary = JobSummary(job)
    registry_path = options.ledger_path
    with ProcessedExports(registry_path, settings.target) as registry:
        todo = []
        for path in files:
            print_ = fingerprint(path)
            done_by = registry.seen(print_)
            if done_by:
                summary.already_processed.append(str(path))
                say(f"{path.name}: already processed by run {done_by}, skipped")
            else:
                todo.append((path, print_))
        budget = _Progress(
            say, settings.rate_limit, _requests_to_send(todo, spec, settings, options)
        )
        for index, (path, print_) in enumerate(todo):
            file_options = replace(options, out=options.out / path.stem if options.out else None)
            report = await run_one(path, file_options)
            summary.reports.append(report)
            budget.after(path, report, index + 1, len(todo))
            if report.aborted:
                summary.not_started = [str(p) for p, _ in todo[index + 1 :]]
                say(f"stopped: {report.aborted}; {len(summary.not_started)} file(s) not started")
                break
            if not options.dry_run and report.outcomes.get("pending", 0) == 0:
                registry.mark(print_, path, report.run_id, report.rows_read)
    return summary


def _requests_to_send(
    todo: list[tuple[Path, str]], spec: MappingSpec, settings: Settings, options: RunOptions
) -> int:
    """Requests the files still need (after dedupe against the ledger): the basis of the ETA."""
    if not todo:
        return 0
    plan = plan_run([str(p) for p, _ in todo], spec, settings.account_id)
    if not options.ledger_path.exists():
        return count_would_send(plan, None)
    with Ledger(options.ledger_path, settings.target) as ledger:
        return count_would_send(plan, ledger)


class _Progress:
    """Rows done, rows/s and an ETA from the rate limit, said after each file."""

    def __init__(self, say: Say, rate_limit: tuple[int, float], requests: int) -> None:
        self.say = say
        self.per_second = rate_limit[0] / rate_limit[1]
        self.requests_left = requests
        self.rows = 0
        self.started = time.monotonic()
        say(f"to send: {cost_estimate(requests, rate_limit)['text']}")

    def after(self, path: Path, report: RunReport, done: int, total: int) -> None:
        self.rows += report.rows_read
        sent = report.outcomes.get("delivered", 0) + report.outcomes.get("failed", 0)
        self.requests_left = max(
            0, self.requests_left - sent - report.outcomes.get("would_send", 0)
        )
        elapsed = max(time.monotonic() - self.started, 1e-9)
        eta = human_duration(self.requests_left / self.per_second)
        self.say(
            f"[{done}/{total}] {path.name}: {report.rows_read:,} rows · total {self.rows:,} rows, "
            f"{self.rows / elapsed:,.0f} rows/s · {self.requests_left:,} requests left, ETA {eta}"
        )
