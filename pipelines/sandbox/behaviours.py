"""What the sandbox does to a request before routing it: Basic auth, the per-key rate limit,
injected faults and log-normal latency."""

from __future__ import annotations

import base64
import math
import random
from collections import deque
from collections.abc import Callable
from statistics import NormalDist

from starlette.responses import Response

from pipelines.sandbox.config import SandboxConfig
from pipelines.sandbox.responses import error_response

FAULT_ANSWERS = {
    "http_500": (500, "Internal server error"),
    "http_502": (502, "Bad gateway: the provider did not answer"),
    "http_503": (503, "Service unavailable"),
    "http_408": (408, "Request timeout"),
}
_Z99 = NormalDist().inv_cdf(0.99)


class SlidingWindow:
    """At most ``limit`` admissions per key in any ``seconds`` window (a sliding log)."""

    def __init__(self, limit: int, seconds: float) -> None:
        self._limit, self._seconds = limit, seconds
        self._log: dict[str, deque[float]] = {}

    def admit(self, key: str, now: float) -> float | None:
        """Take a slot at ``now`` (None), or return the seconds until one frees (takes nothing)."""
        log = self._log.setdefault(key, deque())
        while log and log[0] <= now - self._seconds:
            log.popleft()
        if len(log) < self._limit:
            log.append(now)
            return None
        return log[0] + self._seconds - now

    def clear(self) -> None:
        """Forget every admission."""
        self._log.clear()


def latency_sampler(median_ms: float, p99_ms: float, rng: random.Random) -> Callable[[], float]:
    """Seconds drawn from a log-normal with the given median and 99th percentile."""
    if median_ms <= 0:
        return lambda: 0.0
    mu, sigma = math.log(median_ms / 1000), math.log(p99_ms / median_ms) / _Z99
    return lambda: rng.lognormvariate(mu, sigma)


def api_key_from_header(authorization: str | None) -> str | None:
    """The user name of an HTTP Basic header with an empty password, else None."""
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return user if sep and not password else None


class RequestGate:
    """Auth, then the rate limit, then the fault draw (``rng`` is shared with the latency)."""

    def __init__(self, config: SandboxConfig, rng: random.Random) -> None:
        self._config, self._rng = config, rng
        self._limiter = SlidingWindow(*config.rate_limit)

    def admit(self, key: str | None, now: float) -> tuple[Response | None, str | None]:
        """Auth, rate limit and fault draw: an early answer and/or the injected fault kind."""
        if key is None or key not in self._config.api_keys:
            message = "Unauthorized: send the API key as the Basic auth user name"
            return error_response(401, message), None
        wait = self._limiter.admit(key, now)
        if wait is not None:
            limit, period = self._config.rate_limit
            retry = str(max(1, math.ceil(wait)))
            message = f"Too many requests: at most {limit} per {period:g} s per API key"
            return error_response(429, message, headers={"retry-after": retry}), None
        if self._config.fault_rate and self._rng.random() < self._config.fault_rate:
            fault = self._rng.choice(self._config.faults)
            if fault in FAULT_ANSWERS:
                status, message = FAULT_ANSWERS[fault]
                headers = {"retry-after": "1"} if status == 408 else None
                return error_response(status, message, headers=headers), fault
            return None, fault
        return None, None

    def clear(self) -> None:
        """Forget every rate-limit window."""
        self._limiter.clear()
