"""How long a call takes when Redis hangs, with more callers than pooled connections.

Usage: python benchmarks/bench_hung_calls.py

One local redis-server, warmed up, then SIGSTOPped (connections open, no replies). Then 100
threads over a pool of 50 (sync face) and 200 tasks over a pool of 50 (async face) each call
`get_key` once; the table gives the slowest and the median call against the configured
`redis_socket_timeout`. Target (hardening issue): no call takes more than one timeout plus a
small margin, since the wait for a pooled connection counts against the same budget.
"""

from __future__ import annotations

import contextlib
import signal
import statistics
import threading
import time

import anyio

import guard_core
import guard_core_sync
from guard_core import SecurityConfig
from guard_core.testing import LocalRedisServer

TIMEOUT = 1.0
POOL = 50


def config(url: str) -> SecurityConfig:
    return SecurityConfig(
        redis_url=url,
        redis_socket_timeout=TIMEOUT,
        redis_pool_timeout=TIMEOUT,
        redis_max_connections=POOL,
    )


def sync_face(server: LocalRedisServer, callers: int) -> list[float]:
    manager = guard_core_sync.RedisManager(config(server.url))
    manager.initialize()
    for _ in range(10):
        manager.get_key("bench", "k")
    server.send_signal(signal.SIGSTOP)  # hung from here on
    durations: list[float] = []
    lock = threading.Lock()

    def call() -> None:
        start = time.perf_counter()
        with contextlib.suppress(guard_core.GuardRedisError):
            manager.get_key("bench", "k")
        with lock:
            durations.append(time.perf_counter() - start)

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    manager.close()
    return durations


async def async_face(server: LocalRedisServer, callers: int) -> list[float]:
    manager = guard_core.RedisManager(config(server.url))
    await manager.initialize()
    for _ in range(10):
        await manager.get_key("bench", "k")
    server.send_signal(signal.SIGSTOP)  # hung from here on
    durations: list[float] = []

    async def call() -> None:
        start = time.perf_counter()
        with contextlib.suppress(guard_core.GuardRedisError):
            await manager.get_key("bench", "k")
        durations.append(time.perf_counter() - start)

    async with anyio.create_task_group() as group:
        for _ in range(callers):
            group.start_soon(call)
    await manager.close()
    return durations


def main() -> None:
    print(f"get_key with Redis hung, pool of {POOL}, redis_socket_timeout {TIMEOUT} s")
    print("| face | callers | slowest s | median s | slowest / timeout |")
    print("| --- | --- | --- | --- | --- |")
    for face, callers in (("sync", 100), ("async", 200)):
        with LocalRedisServer() as server:
            try:
                if face == "sync":
                    durations = sync_face(server, callers)
                else:
                    durations = anyio.run(async_face, server, callers)
            finally:
                server.send_signal(signal.SIGCONT)
        slowest = max(durations)
        print(
            f"| {face} | {callers} | {slowest:.2f} | {statistics.median(durations):.2f} "
            f"| {slowest / TIMEOUT:.2f} |"
        )


if __name__ == "__main__":
    main()
