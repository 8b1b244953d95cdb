"""Per-operation cost of RedisManager against raw redis-py, both faces, one real redis-server.

Usage: python benchmarks/bench_redis_manager.py [--ops N]

Each row times the same command sequentially through the manager and through a raw client
on the same server in one run, and reports medians, p99s and the manager/raw ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Awaitable, Callable

import anyio
import redis
import redis.asyncio

import guard_core
import guard_core_sync
from guard_core import SecurityConfig
from guard_core.testing import LocalRedisServer


def summarise(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e6, ordered[int(len(ordered) * 0.99) - 1] * 1e6


def time_sync(op: Callable[[], object], ops: int) -> list[float]:
    samples = []
    for _ in range(ops):
        start = time.perf_counter()
        op()
        samples.append(time.perf_counter() - start)
    return samples


async def time_async(op: Callable[[], Awaitable[object]], ops: int) -> list[float]:
    samples = []
    for _ in range(ops):
        start = time.perf_counter()
        await op()
        samples.append(time.perf_counter() - start)
    return samples


def report(face: str, name: str, ours: list[float], raw: list[float]) -> None:
    ours_p50, ours_p99 = summarise(ours)
    raw_p50, raw_p99 = summarise(raw)
    print(
        f"| {face} | {name} | {ours_p50:.1f} | {ours_p99:.1f} | {raw_p50:.1f} | {raw_p99:.1f} "
        f"| {ours_p50 / raw_p50:.2f} |"
    )


async def bench_async(url: str, ops: int) -> None:
    manager = guard_core.RedisManager(SecurityConfig(redis_url=url))
    await manager.initialize()
    raw = redis.asyncio.Redis.from_url(url, decode_responses=True)
    await raw.ping()
    rows: list[tuple[str, Callable[[], Awaitable[object]], Callable[[], Awaitable[object]]]] = [
        ("set_key", lambda: manager.set_key("b", "k", "v"), lambda: raw.set("guard_core:b:k", "v")),
        ("get_key", lambda: manager.get_key("b", "k"), lambda: raw.get("guard_core:b:k")),
        ("exists", lambda: manager.exists("b", "k"), lambda: raw.exists("guard_core:b:k")),
    ]
    for name, ours, theirs in rows:
        await time_async(ours, ops // 10)  # warm up
        await time_async(theirs, ops // 10)
        report("async", name, await time_async(ours, ops), await time_async(theirs, ops))
    await manager.close()
    await raw.aclose()


def bench_sync(url: str, ops: int) -> None:
    manager = guard_core_sync.RedisManager(SecurityConfig(redis_url=url))
    manager.initialize()
    raw = redis.Redis.from_url(url, decode_responses=True)
    raw.ping()
    rows: list[tuple[str, Callable[[], object], Callable[[], object]]] = [
        ("set_key", lambda: manager.set_key("b", "k", "v"), lambda: raw.set("guard_core:b:k", "v")),
        ("get_key", lambda: manager.get_key("b", "k"), lambda: raw.get("guard_core:b:k")),
        ("exists", lambda: manager.exists("b", "k"), lambda: raw.exists("guard_core:b:k")),
    ]
    for name, ours, theirs in rows:
        time_sync(ours, ops // 10)
        time_sync(theirs, ops // 10)
        report("sync", name, time_sync(ours, ops), time_sync(theirs, ops))
    manager.close()
    raw.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ops", type=int, default=5000)
    args = parser.parse_args()
    with LocalRedisServer() as server:
        print(f"{args.ops} sequential operations each, redis-server on 127.0.0.1:{server.port}\n")
        print("| face | op | ours p50 µs | ours p99 µs | raw p50 µs | raw p99 µs | p50 ratio |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        anyio.run(bench_async, server.url, args.ops)
        bench_sync(server.url, args.ops)


if __name__ == "__main__":
    main()
