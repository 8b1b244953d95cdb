"""Commands issued concurrently give each caller what a sequential run would give it (the
async face batches them into shared round trips; the sync face sends them from threads),
under fuzzed interleavings, on every backend. Written once, generated for the sync face."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from typing import Any

import pytest

from guard_core._shared.concurrency import async_sleep
from guard_core._shared.storage.lua_scripts import LuaScript
from guard_core.exceptions import GuardRedisError
from guard_core.handlers.redis_handler import RedisManager
from tests.support.workers import run_async_workers

pytestmark = pytest.mark.anyio

WORKERS = 12
OPERATIONS = 40
_SOURCE = "return redis.call('INCRBY', KEYS[1], ARGV[1])"
COUNTER = LuaScript(
    name="test_counter", source=_SOURCE, sha=hashlib.sha1(_SOURCE.encode()).hexdigest()
)


def plan(seed: int, worker: int) -> list[tuple[str, str, int]]:
    """A worker's operations: (kind, key, number), on keys of its own."""
    rng = random.Random(seed * 1000 + worker)
    kinds = ["set", "set_ttl", "get", "get", "exists", "delete", "script", "many"]
    return [
        (rng.choice(kinds), f"w{worker}:{rng.randrange(4)}", rng.randrange(1, 100))
        for _ in range(OPERATIONS)
    ]


def expected_results(operations: list[tuple[str, str, int]]) -> list[Any]:
    """What a sequential run gives, from a model of the worker's keys."""
    values: dict[str, str] = {}
    counters: dict[str, int] = {}
    results: list[Any] = []
    for kind, key, number in operations:
        if kind in ("set", "set_ttl"):
            values[key] = f"{key}={number}"
            results.append(True)
        elif kind == "get":
            results.append(values.get(key))
        elif kind == "exists":
            results.append(key in values)
        elif kind == "delete":
            results.append(1 if values.pop(key, None) is not None else 0)
        elif kind == "script":
            counters[key] = counters.get(key, 0) + number
            results.append(counters[key])
        else:
            results.append([values.get(key), None])
    return results


async def run(
    manager: RedisManager, operations: list[tuple[str, str, int]], seed: int
) -> list[Any]:
    rng = random.Random(seed)
    results: list[Any] = []
    for kind, key, number in operations:
        if rng.random() < 0.5:
            await async_sleep(0)  # shuffle the interleaving
        if kind == "set":
            results.append(await manager.set_key("fuzz", key, f"{key}={number}"))
        elif kind == "set_ttl":
            results.append(await manager.set_key("fuzz", key, f"{key}={number}", ttl=600))
        elif kind == "get":
            results.append(await manager.get_key("fuzz", key))
        elif kind == "exists":
            results.append(await manager.exists("fuzz", key))
        elif kind == "delete":
            results.append(await manager.delete("fuzz", key))
        elif kind == "script":
            reply = await manager.run_script(COUNTER, [("fuzz-counter", key)], [number])
            results.append(int(reply))
        else:
            results.append(await manager.get_many("fuzz", [key, f"{key}:never-set"]))
    return results


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_concurrent_results_equal_a_sequential_run(
    make_manager: Callable[..., RedisManager], seed: int
) -> None:
    manager = make_manager()
    plans = [plan(seed, worker) for worker in range(WORKERS)]
    found: dict[int, list[Any]] = {}

    async def worker(index: int) -> None:
        found[index] = await run(manager, plans[index], seed * 100 + index)

    await run_async_workers(WORKERS, worker)
    for index in range(WORKERS):
        assert found[index] == expected_results(plans[index]), f"worker {index}"


async def test_an_error_reply_fails_its_caller_only(
    make_manager: Callable[..., RedisManager],
) -> None:
    manager = make_manager()
    await manager.set_key("mixed", "plain", "value")
    async with manager.get_connection() as conn:
        await conn.hset(manager.full_key("mixed", "a-hash"), "field", "1")
    outcomes: dict[int, object] = {}

    async def worker(index: int) -> None:
        for _ in range(10):
            try:
                key = "a-hash" if index == 0 else "plain"
                outcomes[index] = await manager.get_key("mixed", key)
            except GuardRedisError as exc:
                outcomes[index] = exc
            await async_sleep(0)

    await run_async_workers(WORKERS, worker)
    assert isinstance(outcomes[0], GuardRedisError)
    assert "WRONGTYPE" in str(outcomes[0].__cause__)
    assert all(outcomes[index] == "value" for index in range(1, WORKERS))
    assert manager.available  # an error reply is no outage


async def test_closing_while_commands_are_in_flight_ends_every_caller(
    make_manager: Callable[..., RedisManager],
) -> None:
    manager = make_manager()
    await manager.set_key("closing", "k", "v")
    outcomes: dict[int, list[object]] = {}

    async def worker(index: int) -> None:
        seen: list[object] = []
        outcomes[index] = seen
        for _ in range(5000):  # ends by the close, long before this bound
            try:
                seen.append(await manager.get_key("closing", "k"))
            except GuardRedisError as exc:
                seen.append(exc)
                return
            await async_sleep(0)
            if index == 0 and len(seen) == 20:
                await manager.close()  # shut down in the middle of the others' calls

    await run_async_workers(WORKERS, worker)
    for index, seen in outcomes.items():
        assert seen, f"worker {index} made no call"
        answered = [value for value in seen if not isinstance(value, GuardRedisError)]
        assert answered == ["v"] * len(answered), f"worker {index}"
    # every worker ended; all that called after the close were refused
    assert all(isinstance(seen[-1], GuardRedisError) for seen in outcomes.values())
    with pytest.raises(GuardRedisError):
        await manager.get_key("closing", "k")
