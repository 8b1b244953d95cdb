"""Per-operation cost of RedisManager against raw redis-py, both faces, on each topology:
one redis-server, a Sentinel-managed master (1 replica, 3 sentinels) and a 3-primary Cluster.

Usage: python benchmarks/bench_redis_manager.py [--ops N] [--topology NAME ...]

Each row times the same command sequentially through the manager and through a raw redis-py
client of the same topology (`Redis`, `Sentinel.master_for`, `RedisCluster`) in one run, and
reports medians, p99s and the manager/raw ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import redis
import redis.asyncio

import guard_core
import guard_core_sync
from guard_core import SecurityConfig
from guard_core._shared.connection.redis_url import Topology, parse_redis_url
from guard_core._shared.keys import build_key
from guard_core.testing import LocalRedisServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the suite's topologies
from tests.support.topologies import LocalRedisCluster, LocalRedisSentinel

TOPOLOGIES = ("standalone", "sentinel", "cluster")
MANY = [f"10.0.0.{n}" for n in range(10)]  # get_many: 10 keys (10 slots on a Cluster)


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


def report(topology: str, face: str, name: str, ours: list[float], raw: list[float]) -> None:
    ours_p50, ours_p99 = summarise(ours)
    raw_p50, raw_p99 = summarise(raw)
    print(
        f"| {topology} | {face} | {name} | {ours_p50:.1f} | {ours_p99:.1f} | {raw_p50:.1f} "
        f"| {raw_p99:.1f} | {ours_p50 / raw_p50:.2f} |"
    )


def raw_client(url: str, face: Any) -> Any:
    """A plain redis-py client of the face (`redis` or `redis.asyncio`) on the topology."""
    target = parse_redis_url(url)
    if target.topology is Topology.SENTINEL:
        sentinel = face.sentinel.Sentinel(target.nodes, decode_responses=True)
        return sentinel.master_for(target.service_name, decode_responses=True)
    if target.topology is Topology.CLUSTER:
        nodes = [face.cluster.ClusterNode(host, port) for host, port in target.nodes]
        return face.cluster.RedisCluster(startup_nodes=nodes, decode_responses=True)
    return face.Redis.from_url(url, decode_responses=True)


def raw_rows(url: str, raw: Any) -> list[tuple[str, Callable[[], Any]]]:
    cluster = parse_redis_url(url).topology is Topology.CLUSTER
    key = build_key("guard_core:", "b", "k", cluster=cluster)
    many = [build_key("guard_core:", "m", ip, cluster=cluster) for ip in MANY]
    mget = raw.mget_nonatomic if cluster else raw.mget
    return [
        ("set_key", lambda: raw.set(key, "v")),
        ("get_key", lambda: raw.get(key)),
        ("exists", lambda: raw.exists(key)),
        ("get_many (10)", lambda: mget(many)),
    ]


def our_rows(manager: Any) -> list[tuple[str, Callable[[], Any]]]:
    return [
        ("set_key", lambda: manager.set_key("b", "k", "v")),
        ("get_key", lambda: manager.get_key("b", "k")),
        ("exists", lambda: manager.exists("b", "k")),
        ("get_many (10)", lambda: manager.get_many("m", MANY)),
    ]


async def bench_async(topology: str, url: str, ops: int) -> None:
    manager = guard_core.RedisManager(SecurityConfig(redis_url=url))
    await manager.initialize()
    await manager.set_many("m", {ip: ("1", None) for ip in MANY})
    raw = raw_client(url, redis.asyncio)
    await raw.ping()
    for (name, ours), (_, theirs) in zip(our_rows(manager), raw_rows(url, raw), strict=True):
        await time_async(ours, ops // 10)  # warm up
        await time_async(theirs, ops // 10)
        mine = await time_async(ours, ops)
        report(topology, "async", name, mine, await time_async(theirs, ops))
    await manager.close()
    await raw.aclose()


def bench_sync(topology: str, url: str, ops: int) -> None:
    manager = guard_core_sync.RedisManager(SecurityConfig(redis_url=url))
    manager.initialize()
    raw = raw_client(url, redis)
    raw.ping()
    for (name, ours), (_, theirs) in zip(our_rows(manager), raw_rows(url, raw), strict=True):
        time_sync(ours, ops // 10)
        time_sync(theirs, ops // 10)
        report(topology, "sync", name, time_sync(ours, ops), time_sync(theirs, ops))
    manager.close()
    raw.close()


@contextmanager
def started(topology: str) -> Iterator[str]:
    """The URL of a freshly started local topology, stopped afterwards."""
    server: Any = {
        "standalone": LocalRedisServer,
        "sentinel": LocalRedisSentinel,
        "cluster": LocalRedisCluster,
    }[topology]()
    with server:
        yield server.url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ops", type=int, default=5000)
    parser.add_argument("--topology", choices=TOPOLOGIES, action="append")
    args = parser.parse_args()
    print(f"{args.ops} sequential operations each, local servers on 127.0.0.1\n")
    print(
        "| topology | face | op | ours p50 µs | ours p99 µs | raw p50 µs | raw p99 µs | p50 ratio |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for topology in args.topology or TOPOLOGIES:
        with started(topology) as url:
            anyio.run(bench_async, topology, url, args.ops)
            bench_sync(topology, url, args.ops)


if __name__ == "__main__":
    main()
