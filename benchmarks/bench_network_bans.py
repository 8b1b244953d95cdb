"""Cost of `is_ip_banned` with many network bans stored, against none, both faces.

Usage: python benchmarks/bench_network_bans.py [--networks N] [--ops N]

One local redis-server. For each face, two instances under two prefixes: one with no network
bans, one with N network bans of every IPv4 prefix length from /8 to /32 (made through the
library by another process). Both time `is_ip_banned` for an address no ban covers, in
alternating rounds.
Target (state-layer issue): with 100,000 network bans the p50 is at most 1.2x the p50 with
none. Lookups walk one dict per distinct prefix length, never the list of networks.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from functools import partial

import anyio

import guard_core
import guard_core_sync
from guard_core import SecurityConfig
from guard_core.testing import LocalRedisServer

ROUNDS = 10
PROBE = "203.0.113.99"  # covered by no ban below (203.0.113.0/24 is never drawn)


def networks(count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    found: set[str] = set()
    while len(found) < count:
        length = rng.randint(8, 32)
        value = rng.getrandbits(32) & ~((1 << (32 - length)) - 1)
        first = value >> 24
        if first in (0, 127, 203) or first >= 224:
            continue
        found.add(
            f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}/{length}"
        )
    return sorted(found)


def p50_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


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


def config(url: str, prefix: str) -> SecurityConfig:
    # the index is re-read when it changed, at most once per refresh interval
    return SecurityConfig(redis_url=url, redis_prefix=prefix, redis_state_refresh_interval=5.0)


def populate(url: str, prefix: str, cidrs: list[str]) -> None:
    """Ban `cidrs` through the library from another process: another app instance, whose
    memory does not weigh on the instance measured."""
    with guard_core_sync.Guard(config(url, prefix)) as writer:
        for cidr in cidrs:
            writer.ip_bans.ban_ip(cidr, 3600)


def populate_elsewhere(url: str, prefix: str, cidrs: list[str]) -> None:
    process = multiprocessing.get_context("spawn").Process(
        target=populate, args=(url, prefix, cidrs)
    )
    process.start()
    process.join()
    if process.exitcode != 0:
        raise RuntimeError(f"the writer process failed ({process.exitcode})")


def bench_sync(url: str, cidrs: list[str], ops: int) -> tuple[float, float]:
    populate_elsewhere(url, "bench-sync-full:", cidrs)
    with (
        guard_core_sync.Guard(config(url, "bench-sync-empty:")) as empty,
        guard_core_sync.Guard(config(url, "bench-sync-full:")) as full,
    ):
        assert full.ip_bans.is_ip_banned(cidrs[0].split("/")[0])
        samples: dict[str, list[float]] = {"empty": [], "full": []}
        for _ in range(ROUNDS):  # alternate, so that drift on a busy machine hits both
            for name, guard in (("empty", empty), ("full", full)):
                samples[name] += time_sync(partial(guard.ip_bans.is_ip_banned, PROBE), ops)
    return p50_us(samples["empty"]), p50_us(samples["full"])


async def bench_async(url: str, cidrs: list[str], ops: int) -> tuple[float, float]:
    await anyio.to_thread.run_sync(populate_elsewhere, url, "bench-async-full:", cidrs)
    async with (
        guard_core.Guard(config(url, "bench-async-empty:")) as empty,
        guard_core.Guard(config(url, "bench-async-full:")) as full,
    ):
        assert await full.ip_bans.is_ip_banned(cidrs[0].split("/")[0])
        samples: dict[str, list[float]] = {"empty": [], "full": []}
        for _ in range(ROUNDS):
            for name, guard in (("empty", empty), ("full", full)):
                check = partial(guard.ip_bans.is_ip_banned, PROBE)
                samples[name] += await time_async(check, ops)
    return p50_us(samples["empty"]), p50_us(samples["full"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, default=100_000)
    parser.add_argument("--ops", type=int, default=500, help="calls per round (10 rounds)")
    args = parser.parse_args()
    cidrs = networks(args.networks)
    print(f"is_ip_banned, unbanned address, {args.networks} network bans vs none")
    print("| face | none p50 µs | with bans p50 µs | ratio (target <= 1.2) |")
    print("| --- | --- | --- | --- |")
    with LocalRedisServer() as server:
        rows = [("sync", bench_sync(server.url, cidrs, args.ops))]
        rows.append(("async", anyio.run(bench_async, server.url, cidrs, args.ops)))
    for face, (empty, full) in rows:
        print(f"| {face} | {empty:.1f} | {full:.1f} | {full / empty:.2f} |")


if __name__ == "__main__":
    main()
