"""How the sandbox behaves: its settings with their defaults and limits, and the latency parser."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_API_KEY = "sandbox-key"
DEFAULT_ACCOUNT_ID = "sandbox-account"
ACCOUNT_REFUSED = "Account not found or not accessible with this API key"  # StackOne's 403
FAULT_KINDS: tuple[str, ...] = ("http_500", "http_502", "http_503", "http_408", "drop", "slow")
MAX_PAGE_SIZE = 100


@dataclass
class SandboxConfig:
    """How the sandbox behaves; defaults mimic StackOne (1000 requests/60 s per key, no faults)."""

    api_keys: set[str] = field(default_factory=lambda: {DEFAULT_API_KEY})
    account_ids: set[str] = field(default_factory=lambda: {DEFAULT_ACCOUNT_ID})  # the keys reach
    rate_limit: tuple[int, float] = (1000, 60.0)
    latency: tuple[float, float] = (0.0, 0.0)  # (median_ms, p99_ms) of a log-normal
    fault_rate: float = 0.0
    faults: tuple[str, ...] = FAULT_KINDS
    slow_seconds: float = 30.0
    users: list[dict[str, str]] | None = None  # loaded: completions for unknown users are 404
    db_path: str | Path | None = None  # None: in-memory SQLite
    seed: int | None = None
    page_size: int = 25
    store_repeats: bool = False  # an exact repeat is a new record (a provider that does not dedupe)
    list_completions: bool = True  # False: a user's completions cannot be listed (501)

    def __post_init__(self) -> None:
        """Reject settings that cannot work, naming the setting."""
        if self.rate_limit[0] < 1 or self.rate_limit[1] <= 0:
            raise ValueError(f"rate_limit must be positive, got {self.rate_limit}")
        if not 0 <= self.latency[0] <= self.latency[1]:
            raise ValueError(f"latency must be 0 <= median <= p99, got {self.latency}")
        if not 0 <= self.fault_rate <= 1:
            raise ValueError(f"fault_rate must be in 0..1, got {self.fault_rate}")
        unknown = set(self.faults) - set(FAULT_KINDS)
        if unknown or not self.faults:
            raise ValueError(
                f"faults must be a non-empty subset of {FAULT_KINDS}, got {self.faults}"
            )
        if not self.account_ids or not all(self.account_ids):
            raise ValueError(f"account_ids must be non-empty ids, got {sorted(self.account_ids)}")
        if any("id" not in user for user in self.users or []):
            raise ValueError("every user needs an 'id'")
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be in 1..{MAX_PAGE_SIZE}, got {self.page_size}")


def parse_latency(text: str) -> tuple[float, float]:
    """``"300,3000"`` → ``(300.0, 3000.0)`` (median ms, p99 ms); one number means no spread."""
    try:
        parts = [float(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"latency must look like 300,3000 (median,p99 ms), got {text!r}") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or not 0 <= parts[0] <= parts[1] or not all(map(math.isfinite, parts)):
        raise ValueError(f"latency must be median,p99 with 0 <= median <= p99, got {text!r}")
    return parts[0], parts[1]
