"""What a real run would cost: requests and the time they take at the rate limit."""

from __future__ import annotations


def cost_estimate(requests: int, rate_limit: tuple[int, float]) -> dict[str, object]:
    """What a real run would cost: requests and the time they take at the rate limit."""
    per_window, seconds = rate_limit
    duration = max(0.0, (requests - per_window) / per_window * seconds) if requests else 0.0
    text = f"{requests:,} requests ≈ {human_duration(duration)} at {per_window}/{seconds:g}s"
    return {"requests": requests, "seconds": round(duration, 1), "text": text}


def human_duration(seconds: float) -> str:
    """Seconds as a person reads them: ``45 s``, ``13 min``, ``2.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
