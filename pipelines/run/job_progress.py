"""What a job says after each file: rows done, rows/s and, when the requests to send were
counted up front (a backfill), how many are left and an ETA at the rate limit."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from pipelines.core.settings import Settings
from pipelines.output.report import RunReport
from pipelines.run.estimate import cost_estimate, human_duration

__all__ = ["JobProgress"]

Say = Callable[[str], None]


class JobProgress:
    """Rows done, rows/s and (when the requests to send were counted) an ETA from the rate
    limit, said after each file."""

    def __init__(self, say: Say, settings: Settings, requests: int | None) -> None:
        rate_limit = settings.rate_limit
        self.say = say
        self.per_second = rate_limit[0] / rate_limit[1]
        self.requests_left = requests
        self.rows = 0
        self.started = time.monotonic()
        if requests is not None:
            cost = cost_estimate(requests, rate_limit, concurrency=settings.concurrency)
            say(f"to send: {cost['text']}")

    def after(self, path: Path, report: RunReport, done: int, total: int) -> None:
        self.rows += report.rows_read
        outcomes, reasons = report.outcomes, report.reasons
        sent = (  # the rows the estimate counted as requests, now answered
            outcomes.get("delivered", 0)
            + outcomes.get("failed", 0)
            - reasons.get("gave_up", 0)
            + reasons.get("http_409", 0)
            + outcomes.get("would_send", 0)
        )
        elapsed = max(time.monotonic() - self.started, 1e-9)
        line = (
            f"[{done}/{total}] {path.name}: {report.rows_read:,} rows · total {self.rows:,} rows, "
            f"{self.rows / elapsed:,.0f} rows/s"
        )
        if self.requests_left is not None:
            self.requests_left = max(0, self.requests_left - sent)
            eta = human_duration(self.requests_left / self.per_second)
            line += f" · {self.requests_left:,} requests left, ETA {eta}"
        self.say(line)
