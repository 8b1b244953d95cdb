"""Run one body concurrently: anyio tasks for the async face, threads for the sync face."""

from __future__ import annotations

import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio

ASYNC_WORKERS = 200
WORKERS = 16


async def run_async_workers(count: int, body: Callable[[int], Coroutine[Any, Any, None]]) -> None:
    async with anyio.create_task_group() as group:
        for index in range(count):
            group.start_soon(body, index)


def run_workers(count: int, body: Callable[[int], None]) -> None:
    barrier = threading.Barrier(count)

    def start(index: int) -> None:
        barrier.wait()
        body(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        for future in [pool.submit(start, index) for index in range(count)]:
            future.result()


#: Crowds of callers sharing one manager in the connection-budget tests: tasks of the async
#: face, threads of the sync face.
ASYNC_CROWDS = (2000,)
CROWDS = (1, 32, 100)

#: Callers of one guard making mixed calls while Redis restarts (tasks of the async face,
#: threads of the sync face).
ASYNC_MIXED_CALLERS = 64
MIXED_CALLERS = 32
