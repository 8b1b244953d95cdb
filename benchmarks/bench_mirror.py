"""The ban mirror: load time and memory with many address bans in Redis, and propagation.

Usage: python benchmarks/bench_mirror.py [--bans N] [--rounds N]

One local redis-server holding N address bans in the listing index (written straight into
`ban_index:addresses`, as `ban_ip` leaves it). For each face:
- load: the time `Guard.start()` takes to mirror them all (ZSCAN steps), median of rounds;
- memory: the bytes the mirror allocates per ban (tracemalloc, one separate load);
- propagation: the time from `ban_ip` on one instance until another's mirror holds the ban
  (pushed invalidation, then one GET in the subscription's task), median and worst.
Targets (outage issue): 1,000,000 bans loaded within 10 s, in at most 200 MB.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable
from functools import partial
from typing import Any

import anyio
import redis

from guard_core.guard import Guard
from guard_core.models import SecurityConfig
from guard_core.testing import LocalRedisServer
from guard_core_sync.guard import Guard as SyncGuard

PREFIX = "guard_core:"


def fill(server: LocalRedisServer, count: int) -> None:
    client = redis.Redis.from_url(server.url)
    end = time.time() + 86_400
    batch: dict[str, float] = {}
    with client.pipeline(transaction=False) as pipe:
        for index in range(count):
            address = f"10.{(index >> 16) & 255}.{(index >> 8) & 255}.{index & 255}"
            batch[address] = end + index % 3600
            if len(batch) == 10_000:
                pipe.zadd(PREFIX + "ban_index:addresses", batch)
                pipe.execute()
                batch = {}
        if batch:
            pipe.zadd(PREFIX + "ban_index:addresses", batch)
            pipe.execute()
    client.close()


def config(server: LocalRedisServer) -> SecurityConfig:
    return SecurityConfig(redis_url=server.url, ip_ban_mirror_max_entries=2_000_000)


async def async_load(server: LocalRedisServer) -> tuple[float, int]:
    guard = Guard(config(server))
    began = time.perf_counter()
    await guard.start()
    took = time.perf_counter() - began
    held = len(guard.store.mirror.addresses)
    await guard.close()
    return took, held


def sync_load(server: LocalRedisServer) -> tuple[float, int]:
    guard = SyncGuard(config(server))
    began = time.perf_counter()
    guard.start()
    took = time.perf_counter() - began
    held = len(guard.store.mirror.addresses)
    guard.close()
    return took, held


def bytes_per_ban(server: LocalRedisServer, count: int) -> float:
    guard = SyncGuard(config(server))
    gc.collect()
    tracemalloc.start()
    guard.store.mirror.load()
    gc.collect()
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    held = len(guard.store.mirror.addresses)
    guard.close()
    return current / max(1, held)


async def async_propagation(server: LocalRedisServer, rounds: int) -> list[float]:
    times: list[float] = []
    async with Guard(config(server)) as maker, Guard(config(server)) as follower:
        while not follower.store.invalidations.subscribed:
            await anyio.sleep(0.01)
        for index in range(rounds):
            address = f"192.0.2.{index % 250 + 1}"
            began = time.perf_counter()
            await maker.ip_bans.ban_ip(address, 600)
            while follower.store.mirror.addresses.banned_until(address) is None:
                await anyio.sleep(0.0005)
            times.append(time.perf_counter() - began)
            await maker.ip_bans.unban_ip(address)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bans", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with LocalRedisServer() as server:
        began = time.perf_counter()
        fill(server, args.bans)
        print(f"filled {args.bans:,} bans in {time.perf_counter() - began:.1f} s")
        rows: list[tuple[str, Any, Any]] = []
        loads: list[tuple[str, Callable[[], tuple[float, int]]]] = [
            ("async", partial(anyio.run, async_load, server)),
            ("sync", partial(sync_load, server)),
        ]
        for face, load in loads:
            runs = [load() for _ in range(args.rounds)]
            assert all(held == args.bans for _, held in runs), runs
            median = statistics.median(took for took, _ in runs)
            rows.append((face, median, max(took for took, _ in runs)))
        per_ban = bytes_per_ban(server, args.bans)
        print(f"\n| face | load of {args.bans:,} bans, median | worst | target |")
        print("| --- | --- | --- | --- |")
        for face, median, worst in rows:
            print(f"| {face} | {median:.2f} s | {worst:.2f} s | 10 s |")
        total_mb = per_ban * args.bans / 1e6
        print(
            f"\nmemory: {per_ban:.0f} bytes per ban, {total_mb:.0f} MB for {args.bans:,}"
            " (target 200 MB)"
        )
        redis.Redis.from_url(server.url).flushall()
        times = anyio.run(async_propagation, server, 100)
        print(
            f"propagation (async, 100 bans): median {statistics.median(times) * 1000:.2f} ms, "
            f"worst {max(times) * 1000:.2f} ms"
        )


if __name__ == "__main__":
    main()
