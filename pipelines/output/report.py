"""report.json: what happened to every row of a run; the outcome counts add up to rows read."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from pipelines.core.outcomes import OUTCOMES, RunMode
from pipelines.output.run_folder import open_private


@dataclass
class RunReport:
    """Counters of one run, filled in chunk by chunk."""

    run_id: str
    mode: RunMode
    target: str
    sources: list[str]
    started_at: datetime
    finished_at: datetime | None = None
    rows_read: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)
    in_doubt_keys: list[str] = field(default_factory=list)
    changed_after_delivery: list[str] = field(default_factory=list)
    requests_sent: int = 0
    status_429: int = 0
    retries: int = 0
    deadletter: dict[str, str] = field(default_factory=dict)
    aborted: str | None = None
    estimate: dict[str, object] | None = None  # dry run: what a real run would cost
    max_invalid_pct: float | None = None
    remote_check: dict[str, object] | None = None  # dry run --check-remote: users not found
    folder: Path | None = None  # the run folder (not part of report.json)
    distinct_users: dict[str, set[str]] = field(default_factory=dict)  # not in report.json

    def add(self, outcome: str, count: int = 1, reason: str | None = None) -> None:
        """Count ``count`` rows ending in ``outcome`` (and, for duplicates and errors, why)."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        if count:
            self.outcomes[outcome] += count
            if reason:
                self.reasons[reason] += count

    @property
    def balanced(self) -> bool:
        """Every row read ends in exactly one outcome."""
        return sum(self.outcomes.values()) == self.rows_read

    def seconds(self) -> float:
        """Wall time of the run so far."""
        end = self.finished_at or datetime.now(self.started_at.tzinfo)
        return max((end - self.started_at).total_seconds(), 1e-9)

    def as_dict(self) -> dict[str, Any]:
        """The report.json document of DESIGN §8."""
        seconds = self.seconds()
        return {
            "run_id": self.run_id,
            "mode": self.mode,
            "target": self.target,
            "sources": self.sources,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at) if self.finished_at else None,
            "rows_read": self.rows_read,
            "outcomes": {name.value: self.outcomes.get(name, 0) for name in OUTCOMES},
            "reasons": dict(sorted(self.reasons.items())),
            "warnings": dict(sorted(self.warnings.items())),
            "in_doubt_keys": self.in_doubt_keys,
            "changed_after_delivery": self.changed_after_delivery,
            "requests": {
                "sent": self.requests_sent,
                "per_second": round(self.requests_sent / seconds, 3),
                "status_429": self.status_429,
                "retries": self.retries,
            },
            "rows_per_second": round(self.rows_read / seconds, 1),
            "deadletter": self.deadletter,
            "aborted": self.aborted,
            **({"estimate": self.estimate} if self.estimate is not None else {}),
            **({"remote_check": self.remote_check} if self.remote_check is not None else {}),
            "problem_share_pct": round(self.problem_share() * 100, 3),
        }

    def problem_share(self) -> float:
        """Share of rows read that ended invalid or failed."""
        bad = self.outcomes.get("invalid", 0) + self.outcomes.get("failed", 0)
        return bad / self.rows_read if self.rows_read else 0.0

    def exit_code(self) -> int:
        """DESIGN §8: 3 aborted · 1 rows dead-lettered (or over --max-invalid-pct) · 0."""
        if self.aborted:
            return 3
        if self.max_invalid_pct is not None:
            return 1 if self.problem_share() * 100 > self.max_invalid_pct else 0
        return 1 if self.outcomes.get("invalid", 0) or self.outcomes.get("failed", 0) else 0

    def finish(self, deadletter: dict[str, str]) -> None:
        """The run is over: stamp its end, name its dead-letter files, write report.json."""
        assert self.folder is not None
        self.finished_at = datetime.now(UTC)
        self.deadletter = deadletter
        self.write(self.folder / "report.json")

    def write(self, path: Path) -> None:
        """Write report.json, owner-only."""
        with open_private(path) as handle:
            handle.write(orjson.dumps(self.as_dict(), option=orjson.OPT_INDENT_2))


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
