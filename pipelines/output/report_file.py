"""report.json read back: the report of a run that ran elsewhere (a flow run on another worker),
from its run folder on this disk or in a bucket (``s3://…/report.json``)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from pipelines.core.errors import SourceError
from pipelines.core.object_urls import filesystem_of
from pipelines.core.outcomes import RunMode
from pipelines.output.report import RunReport

__all__ = ["load_report"]

REPORT_NAME = "report.json"


def load_report(folder: str, max_invalid_pct: float | None = None) -> RunReport:
    """The report in the run folder ``folder`` (a path or an object-store URL); the counts,
    reasons, warnings, dead-letter files and how it ended, as the run left them.

    ``max_invalid_pct`` is the threshold the run was given (report.json does not keep it).
    Per-account counts and the split of reasons into dead-letter reasons are not rebuilt.
    """
    document = orjson.loads(_read(folder))
    requests: dict[str, Any] = document.get("requests") or {}
    remote = "://" in folder
    report = RunReport(
        run_id=document["run_id"],
        mode=RunMode(document["mode"]),
        target=document["target"],
        sources=list(document["sources"]),
        started_at=_instant(document["started_at"]),
        finished_at=_instant(document["finished_at"]) if document.get("finished_at") else None,
        rows_read=int(document["rows_read"]),
        outcomes=Counter({k: int(v) for k, v in document["outcomes"].items() if v}),
        reasons=Counter(document.get("reasons") or {}),
        warnings=Counter(document.get("warnings") or {}),
        in_doubt_keys=list(document.get("in_doubt_keys") or []),
        changed_after_delivery=list(document.get("changed_after_delivery") or []),
        requests_sent=int(requests.get("sent", 0)),
        status_429=int(requests.get("status_429", 0)),
        retries=int(requests.get("retries", 0)),
        deadletter=dict(document.get("deadletter") or {}),
        aborted=document.get("aborted"),
        error=document.get("error"),
        traceback_path=Path(document["traceback"]) if document.get("traceback") else None,
        estimate=document.get("estimate"),
        max_invalid_pct=max_invalid_pct,
        remote_check=document.get("remote_check"),
        refused_accounts=dict(document.get("refused_accounts") or {}),
        folder=None if remote else Path(folder),
        location=document.get("location") or (folder.rstrip("/") if remote else None),
    )
    return report


def _read(folder: str) -> bytes:
    """The bytes of ``folder``/report.json."""
    name = f"{folder.rstrip('/')}/{REPORT_NAME}"
    try:
        if "://" not in folder:
            return (Path(folder) / REPORT_NAME).read_bytes()
        fs, path = filesystem_of(name)
        with fs.open_input_stream(path) as stream:
            data: bytes = stream.read()
    except (OSError, ValueError) as exc:
        raise SourceError(name, f"cannot read the run's report: {exc}") from None
    return data


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
