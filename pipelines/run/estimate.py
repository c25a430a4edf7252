"""What a real run would cost: its requests, and the time from the first send to the last answer.

The time follows the client's limiter (``pipelines.api.ratelimit``, a sliding log: a slot is held
from a send until S + margin later), so a full window of N goes out at once and then N more every
S + margin, as fast as the workers allow (each is busy for a request's mean latency); the run ends
when the slowest request still in flight after the last send answers. Latency is a log-normal given
by its median and 99th percentile, as the sandbox takes it; the estimate reads no settings.
"""

from __future__ import annotations

import math
from statistics import NormalDist

from pipelines.api.ratelimit import DEFAULT_MARGIN

__all__ = ["DEFAULT_CONCURRENCY", "DEFAULT_LATENCY", "cost_estimate", "human_duration", "run_seconds"]

# One request, send to answer, (median, p99) in seconds: a unified-API write relayed to the LMS.
# An assumption, not a measurement: pass measured figures when they are known.
DEFAULT_LATENCY = (0.3, 3.0)
DEFAULT_CONCURRENCY = 32  # the settings' default number of workers
_NORMAL = NormalDist()
_Z99 = _NORMAL.inv_cdf(0.99)
_STEP = 0.01  # integration step in standard-normal units (the integrand is smooth: exact enough)


def cost_estimate(
    requests: int,
    rate_limit: tuple[int, float],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    latency: tuple[float, float] = DEFAULT_LATENCY,
) -> dict[str, object]:
    """What a real run would cost: requests and the time they take at the rate limit."""
    per_window, seconds = rate_limit
    duration = run_seconds(requests, rate_limit, concurrency=concurrency, latency=latency)
    text = f"{requests:,} requests ≈ {human_duration(duration)} at {per_window}/{seconds:g}s"
    return {"requests": requests, "seconds": round(duration, 1), "text": text}


def run_seconds(
    requests: int,
    rate_limit: tuple[int, float],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    latency: tuple[float, float] = DEFAULT_LATENCY,
) -> float:
    """Expected seconds from the first send to the last answer of ``requests`` requests."""
    if requests <= 0:
        return 0.0
    per_window, seconds = rate_limit
    median, p99 = latency
    if not 0 <= median <= p99 or concurrency < 1:
        raise ValueError(
            f"need 0 <= median <= p99 and concurrency >= 1, got {latency} and {concurrency}"
        )
    spread = math.log(p99 / median) / _Z99 if median > 0 else 0.0
    held = seconds + min(DEFAULT_MARGIN, seconds / 100)  # as RateLimiter holds a slot
    cycle = median * math.exp(spread**2 / 2)  # a worker's mean time per request
    last = requests - 1
    sent = last_send(last, per_window, held, concurrency, cycle)
    in_flight = min(concurrency, requests - per_window * (last // per_window))
    return sent + expected_slowest(in_flight, median, spread)


def last_send(index: int, per_window: int, held: float, workers: int, cycle: float) -> float:
    """When request ``index`` (from 0) is sent, simulated: t_i = max(t_{i-N} + held, t_{i-C} + cycle).

    It waits for the slot of request i-N (free ``held`` after that send) and for a worker (free
    ``cycle`` after request i-C's send). The solution is the largest a·held + b·cycle with
    a·N + b·C <= i; f(a) = a·held + ⌊(i - a·N)/C⌋·cycle is within ``cycle`` of a line, so only
    the a near the better end of the line can win.
    """
    most = index // per_window
    slope = held - per_window * cycle / workers
    span = most if slope == 0 else min(most, math.ceil(cycle / abs(slope)))
    candidates = range(most - span, most + 1) if slope > 0 else range(span + 1)
    return max(a * held + (index - a * per_window) // workers * cycle for a in candidates)


def expected_slowest(count: int, median: float, spread: float) -> float:
    """Expected largest of ``count`` log-normal latencies (median, sigma ``spread``) in seconds.

    E[max] = ∫ median·e^(s·z) · k·Φ(z)^(k-1)·φ(z) dz with s = ``spread``, summed on a fine grid.
    """
    if count < 1 or median <= 0:
        return 0.0
    if spread == 0:
        return median
    steps = int((18 + spread) / _STEP)
    total = 0.0
    for step in range(steps + 1):
        z = -9 + step * _STEP
        total += math.exp(spread * z) * count * _NORMAL.cdf(z) ** (count - 1) * _NORMAL.pdf(z)
    return median * total * _STEP


def human_duration(seconds: float) -> str:
    """Seconds as a person reads them: ``45 s``, ``13 min``, ``2.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
