"""One outage measurement of one implementation; run by bench_outage.py (not by hand).

Self-contained on purpose: it also runs in the peer's virtualenv, where `guard_core` is the
peer package. It times `get_key` (or raw `GET`) calls with failures caught, injects the
fault into the server whose pid it is given, and prints one JSON line of results.
Protocol on stdout/stdin for a restart: it prints RESTART, then waits for a line (GO)
once the orchestrator has the server answering again.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

import anyio

FAST = 0.001  # an operation answered within 1 ms counts as "failing fast"
OP_CAP = 10.0  # seconds one operation may take before it is abandoned


def make_async_op(impl: str, url: str) -> Callable[[], Awaitable[bool]]:
    if impl == "redis-py":
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(url, decode_responses=True)

        async def raw_get() -> bool:
            await client.get("bench:k")
            return True

        return raw_get
    from guard_core.handlers.redis_handler import RedisManager
    from guard_core.models import SecurityConfig

    manager = RedisManager(SecurityConfig(redis_url=url))

    async def get_key() -> bool:
        await manager.get_key("bench", "k")
        return True

    return get_key


def make_sync_op(url: str) -> Callable[[], bool]:
    from guard_core.models import SecurityConfig
    from guard_core_sync.handlers.redis_handler import RedisManager

    manager = RedisManager(SecurityConfig(redis_url=url))

    def get_key() -> bool:
        manager.get_key("bench", "k")
        return True

    return get_key


class Runner:
    """Times one operation, catching every failure (and abandoning it after OP_CAP)."""

    def __init__(self, impl: str, url: str) -> None:
        self.sync_op = make_sync_op(url) if impl == "ours-sync" else None
        self.async_op = None if self.sync_op else make_async_op(impl, url)

    async def timed(self) -> tuple[float, bool]:
        start = time.perf_counter()
        ok = False
        with anyio.move_on_after(OP_CAP):
            try:
                if self.sync_op is not None:
                    ok = self.sync_op()  # in this thread: the sync face bounds its own waits
                else:
                    assert self.async_op is not None
                    ok = await self.async_op()
            except Exception:
                ok = False
        return time.perf_counter() - start, ok


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def measure(args: argparse.Namespace) -> dict[str, object]:
    runner = Runner(args.impl, args.url)
    for _ in range(200):  # connected and warm
        await runner.timed()
    sig = signal.SIGSTOP if args.fault == "hung" else signal.SIGKILL
    fault_at = time.perf_counter()
    os.kill(args.pid, sig)

    # detection: until one call fails fast (or the budget runs out)
    detect = None
    first_calls: list[float] = []
    while time.perf_counter() - fault_at < args.budget:
        elapsed, _ = await runner.timed()
        first_calls.append(elapsed)
        if elapsed < FAST:
            detect = time.perf_counter() - fault_at
            break

    # per-operation cost once detected (or as it stays, for implementations that never are)
    samples: list[float] = []
    window_start = time.perf_counter()
    while len(samples) < args.ops and time.perf_counter() - window_start < args.budget:
        samples.append((await runner.timed())[0])

    # recovery: from the server answering again to the first call Redis serves
    if args.fault == "hung":
        os.kill(args.pid, signal.SIGCONT)
    else:
        print("RESTART", flush=True)
        sys.stdin.readline()
    back_at = time.perf_counter()
    recover = None
    while time.perf_counter() - back_at < args.budget:
        _, ok = await runner.timed()
        if ok:
            recover = time.perf_counter() - back_at
            break
        await anyio.sleep(0.0005)
    return {
        "impl": args.impl,
        "fault": args.fault,
        "first_call_s": first_calls[0] if first_calls else None,
        "detect_s": detect,
        "ops": len(samples),
        "p50_ms": statistics.median(samples) * 1000 if samples else None,
        "p99_ms": percentile(samples, 0.99) * 1000 if samples else None,
        "recover_s": recover,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--impl", choices=["ours-async", "ours-sync", "redis-py", "peer"])
    parser.add_argument("--fault", choices=["refused", "hung"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--budget", type=float, default=20.0)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # a peer that logs per failed call would skew timings
    if args.impl == "peer":
        args.impl = "ours-async"  # same API, the peer's package on sys.path
        result = anyio.run(measure, args)
        result["impl"] = "peer"
    else:
        result = anyio.run(measure, args)
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
