"""The connection budget holds under any load: callers beyond `redis_max_connections`
queue for a connection, and a healthy Redis never makes one fail (both faces, every
topology, pools down to one connection).

Callers queue first come, first served, and give up only when no connection at all came
free for a whole wait; such a caller gets `RedisBusyError`, which is no outage: the breaker
stays closed.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from guard_core._shared.concurrency import async_sleep
from guard_core._shared.storage.lua_scripts import LuaScript
from guard_core.exceptions import GuardRedisError, RedisBusyError
from guard_core.handlers.redis_handler import RedisManager
from guard_core.models import SecurityConfig
from guard_core.storage.invalidation import Invalidations
from tests.support.backends import Backend
from tests.support.workers import ASYNC_CROWDS, run_async_workers

pytestmark = pytest.mark.anyio

#: Commands of one crowd in all (each caller runs one at least): a few seconds a topology.
OPERATIONS = 1200
WAIT_LIMIT = 10.0  # seconds before a wait gives up (a failure, never a speed figure)
KINDS = ("incr", "get_key", "set_key", "run_script", "get_many", "safe_operation")
_SOURCE = "return redis.call('INCRBY', KEYS[1], ARGV[1])"
COUNTER = LuaScript(
    name="budget_counter", source=_SOURCE, sha=hashlib.sha1(_SOURCE.encode()).hexdigest()
)


async def _ping(conn: Redis) -> Any:
    return await conn.ping()


async def one_command(manager: RedisManager, kind: str, key: str) -> None:
    if kind == "incr":
        assert await manager.incr("budget", "hits", ttl=60)
    elif kind == "get_key":
        await manager.get_key("budget", key)
    elif kind == "set_key":
        assert await manager.set_key("budget", key, "v", ttl=60) is True
    elif kind == "run_script":
        assert await manager.run_script(COUNTER, [("budget", "scripted")], [1])
    elif kind == "get_many":
        assert len(await manager.get_many("budget", [key, "hits"]) or []) == 2
    else:
        assert await manager.safe_operation(_ping)


@pytest.mark.parametrize("callers", ASYNC_CROWDS)
@pytest.mark.parametrize("pool", [1, 2, 3, 4, 50])
async def test_a_crowd_on_a_small_pool_gets_every_answer_and_the_breaker_stays_closed(
    pool: int, callers: int, backend: Backend
) -> None:
    # A short pool timeout, yet callers wait as long as a reply may take (the socket
    # timeout, 1 s), and longer while connections keep coming free: a crowd this size
    # waits longer than 0.1 s for its turn, so a caller that stopped there would fail.
    config = SecurityConfig(
        redis_url=backend.url, redis_max_connections=pool, redis_pool_timeout=0.1
    )
    manager = RedisManager(config, client_factory=backend.client_factory)
    await manager.initialize()
    # the invalidation subscription holds a connection of the pool meanwhile (from 2 on)
    invalidations = Invalidations(manager, "budget")
    invalidations.start()
    deadline = time.monotonic() + WAIT_LIMIT
    while pool >= 2 and not invalidations.subscribed:
        assert time.monotonic() < deadline, "gave up waiting for the subscription"
        await async_sleep(0.005)
    errors: list[str] = []
    per_caller = max(1, OPERATIONS // callers)

    async def caller(index: int) -> None:
        for step in range(per_caller):
            kind = KINDS[(index + step) % len(KINDS)]
            try:
                await one_command(manager, kind, f"k{index % 7}")
            except GuardRedisError as exc:
                errors.append(f"{kind}: {exc!r} from {exc.__cause__!r}")

    try:
        await run_async_workers(callers, caller)
        assert invalidations.subscribed == (pool >= 2)  # held its connection all along
    finally:
        await invalidations.stop()
        await manager.close()
    assert errors[:3] == [], f"{len(errors)} of {callers * per_caller} commands failed"
    snapshot = manager.breaker_snapshot()
    assert (snapshot["state"], snapshot["failures"], snapshot["times_opened"]) == (
        "closed",
        0,
        0,
    )
    expected_hits = sum(
        1
        for index in range(callers)
        for step in range(per_caller)
        if KINDS[(index + step) % len(KINDS)] == "incr"
    )
    assert int(backend.inspect.get(backend.key("budget", "hits"))) == expected_hits


async def test_a_caller_that_gives_up_waiting_is_no_outage(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    """The only connection held for longer than the wait: callers get `RedisBusyError`
    (a 503), the breaker stays closed, one WARNING for them all, and the next call works."""
    caplog.set_level(logging.DEBUG, logger="guard_core")
    manager = RedisManager(
        SecurityConfig(
            redis_url=backend.url,
            redis_max_connections=1,
            redis_pool_timeout=0.05,
            redis_socket_timeout=0.05,
        ),
        client_factory=backend.client_factory,
    )
    await manager.initialize()
    try:
        async with manager.get_connection():  # holds the only slot, sends nothing
            for kind in KINDS:
                with pytest.raises(RedisBusyError) as raised:
                    await one_command(manager, kind, "k")
                assert raised.value.status_code == 503
        assert manager.available
        assert manager.breaker_snapshot()["failures"] == 0
        assert await manager.set_key("budget", "after", "v") is True
    finally:
        await manager.close()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "gave up waiting for a connection" in warnings[0].getMessage()
