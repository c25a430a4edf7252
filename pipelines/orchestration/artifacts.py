"""The markdown a person reads in the Prefect UI: a run's summary, a job's table of file runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.output.account_counts import account_table
from pipelines.output.report import RunReport
from pipelines.run.jobs import JOB_COLUMNS, JobSummary


def summary_markdown(report: RunReport) -> str:
    """The run summary a person reads at a glance: outcomes, reasons, throughput, files."""
    summary = report.as_dict()
    requests = summary["requests"]
    lines = [
        f"# lms-sync {summary['mode'].replace('_', ' ')} {summary['run_id']}",
        "",
        f"Target `{summary['target']}` · rows read **{summary['rows_read']:,}** · "
        f"{summary['rows_per_second']:,} rows/s · requests {requests['sent']:,} "
        f"({requests['per_second']}/s, {requests['status_429']} x 429, {requests['retries']} retries)",
        "",
        "| outcome | rows |",
        "|---|---:|",
        *[f"| {name} | {count:,} |" for name, count in summary["outcomes"].items()],
        "",
    ]
    if summary["reasons"]:
        lines += ["| reason | rows |", "|---|---:|"]
        lines += [f"| {code} | {count:,} |" for code, count in summary["reasons"].items()]
        lines.append("")
    lines += _accounts_markdown(summary)
    if summary["aborted"]:
        lines.append(f"**Stopped early:** {summary['aborted']}")
    lines.append(
        f"Dead-letter: `{summary['deadletter'].get('csv', '')}` · run folder `{report.folder}`"
    )
    return "\n".join(lines)


def _accounts_markdown(summary: dict[str, Any]) -> list[str]:
    """Rows per account (the mapping's account column) and the accounts refused with 403."""
    refused: dict[str, str] = summary.get("refused_accounts") or {}
    lines: list[str] = []
    if summary.get("accounts"):
        header, rows = account_table(summary["accounts"], refused)
        lines += ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines.append("")
    lines += [f"**Account `{a}` refused (HTTP 403):** {m}" for a, m in refused.items()]
    return lines + ([""] if refused else [])


def job_markdown(summary: JobSummary) -> str:
    """A job's summary: one line per file run, skipped and unstarted files."""
    lines = [
        f"# lms-sync {summary.job}",
        "",
        "| " + " | ".join(JOB_COLUMNS) + " |",
        "|---|---|" + "---:|" * (len(JOB_COLUMNS) - 2),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in summary.table()]
    if summary.already_processed:
        lines += [
            "",
            f"Already processed, skipped: {', '.join(Path(p).name for p in summary.already_processed)}",
        ]
    if summary.not_started:
        lines += [
            "",
            f"Not started (run stopped): {', '.join(Path(p).name for p in summary.not_started)}",
        ]
    return "\n".join(lines)
