"""`guard-core bench`: how long the hot calls take on the sync face, with Redis and without.

It starts its own throwaway `redis-server` on a free 127.0.0.1 port (it never touches the
configured Redis), times each call `ops` times, then stops the server and times them again
while degraded. Without redis-server only the in-memory figures are measured. The figures in
benchmarks/README.md come from the fuller `make bench`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from guard_core.models import SecurityConfig
from guard_core.testing import LocalRedisServer, server_available
from guard_core_sync import Guard


def _measure(call: Callable[[int], Any], ops: int) -> dict[str, float]:
    timings = []
    for index in range(ops):
        start = time.perf_counter()
        call(index)
        timings.append(time.perf_counter() - start)
    timings.sort()
    total = sum(timings)
    return {
        "per_second": ops / total if total else float("inf"),
        "median_us": statistics.median(timings) * 1e6,
        "p99_us": timings[min(len(timings) - 1, int(len(timings) * 0.99))] * 1e6,
    }


def _operations(guard: Guard) -> dict[str, Callable[[int], Any]]:
    guard.ip_bans.ban_ip("203.0.113.7", 3600)
    return {
        "is_ip_banned": lambda i: guard.ip_bans.is_ip_banned(f"198.51.100.{i % 250}"),
        "rate_limiter.check": lambda i: guard.rate_limiter.check(
            f"198.51.100.{i % 250}", endpoint="/login", limit=1_000_000
        ),
        "patterns.detect": lambda i: guard.patterns.detect(f"/search?q=item-{i}&page=2"),
        "headers.get_headers": lambda i: guard.headers.get_headers("/"),
    }


def _run(guard: Guard, mode: str, ops: int) -> list[dict[str, Any]]:
    return [
        {"operation": name, "mode": mode, **_measure(call, ops)}
        for name, call in _operations(guard).items()
    ]


def run_bench(ops: int) -> list[dict[str, Any]]:
    """Rows of operation, mode ("redis", "degraded" or "memory"), calls/s, median, p99."""
    if not server_available():
        with Guard(SecurityConfig(enable_redis=False)) as guard:
            return _run(guard, "memory", ops)
    with LocalRedisServer() as server:
        config = SecurityConfig(redis_url=server.url, redis_prefix="bench:")
        with Guard(config) as guard:
            results = _run(guard, "redis", ops)
            server.stop()
            results += _run(guard, "degraded", ops)
    return results
