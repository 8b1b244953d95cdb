"""Where the CPU of one rate-limit check goes, in both faces (a profile, not a speed table).

Usage: python benchmarks/ratelimit_cpu.py [--url redis://127.0.0.1:PORT] [--calls N]

- memory (Redis disabled): microseconds per `check()`, and per `verdict()` of the memory
  window alone (the rest is the check's own path: key memo, inline checks, the call);
- with `--url`: CPU microseconds per `check()` outside `RedisManager`, its `run_script`
  answered by a canned reply (no round trip), so that only guard-core's own code around
  the EVALSHA is counted.
Each figure is the best of five rounds (the machine may be shared).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import guard_core
import guard_core_sync
from guard_core._shared.storage.lua_scripts import SLIDING_WINDOW, LuaScript
from guard_core.models import SecurityConfig

IDENTIFIERS = [f"198.51.100.{i % 250}" for i in range(1000)]
BIG_LIMIT = 1_000_000
ROUNDS = 5
CANNED = [1, 5, 59_000]  # admitted, 5 hits in the window, 59 s until one leaves


def best_sync(call: Callable[[int], object], calls: int, clock: Callable[[], float]) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        started = clock()
        for i in range(calls):
            call(i)
        best = min(best, (clock() - started) / calls * 1e6)
    return best


async def best_async(
    call: Callable[[int], Awaitable[object]], calls: int, clock: Callable[[], float]
) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        started = clock()
        for i in range(calls):
            await call(i)
        best = min(best, (clock() - started) / calls * 1e6)
    return best


def memory(calls: int) -> None:
    config = SecurityConfig(enable_redis=False)
    guard = guard_core_sync.Guard(config)
    check = guard.rate_limiter.check
    window = guard_core_sync.Guard(config).rate_limiter._store.memory
    keys = [f"rate:{identifier}" for identifier in IDENTIFIERS]
    clock = time.perf_counter
    sync_check = best_sync(lambda i: check(IDENTIFIERS[i % 1000], limit=BIG_LIMIT), calls, clock)
    verdict = best_sync(lambda i: window.verdict(keys[i % 1000], BIG_LIMIT, 60.0), calls, clock)

    async def async_face() -> float:
        check = guard_core.Guard(config).rate_limiter.check

        async def call(i: int) -> object:
            return await check(IDENTIFIERS[i % 1000], limit=BIG_LIMIT)

        return await best_async(call, calls, clock)

    async_check = asyncio.run(async_face())
    print(f"memory, sync check():   {sync_check:.3f} us")
    print(f"memory, async check():  {async_check:.3f} us")
    print(f"memory window verdict(): {verdict:.3f} us (within the checks above)")


def shared(url: str, calls: int) -> None:
    config = SecurityConfig(redis_url=url)
    clock = time.process_time

    guard = guard_core_sync.Guard(config)
    guard.start()
    run_script = guard.redis.run_script

    def canned(script: LuaScript, keys: Sequence[tuple[str, str]], args: Sequence[Any]) -> Any:
        return CANNED if script is SLIDING_WINDOW else run_script(script, keys, args)

    guard.redis.run_script = canned  # type: ignore[method-assign]
    check = guard.rate_limiter.check
    sync_cpu = best_sync(
        lambda i: check(IDENTIFIERS[i % 1000], limit=BIG_LIMIT, window=60), calls, clock
    )
    guard.close()

    async def async_face() -> float:
        guard = guard_core.Guard(config)
        await guard.start()
        run_script = guard.redis.run_script

        async def canned(
            script: LuaScript, keys: Sequence[tuple[str, str]], args: Sequence[Any]
        ) -> Any:
            return CANNED if script is SLIDING_WINDOW else await run_script(script, keys, args)

        guard.redis.run_script = canned  # type: ignore[method-assign]
        check = guard.rate_limiter.check

        async def call(i: int) -> object:
            return await check(IDENTIFIERS[i % 1000], limit=BIG_LIMIT, window=60)

        found = await best_async(call, calls, clock)
        await guard.close()
        return found

    async_cpu = asyncio.run(async_face())
    print(f"Redis, sync check():  {sync_cpu:.3f} us CPU outside RedisManager")
    print(f"Redis, async check(): {async_cpu:.3f} us CPU outside RedisManager")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default=None, help="a local redis-server (none: memory only)")
    parser.add_argument("--calls", type=int, default=100_000, help="calls per round")
    args = parser.parse_args()
    memory(args.calls)
    if args.url is not None:
        shared(args.url, args.calls)


if __name__ == "__main__":
    main()
