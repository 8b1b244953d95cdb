"""A hung Redis costs one timeout per call, whatever the concurrency (both faces).

Callers beyond the pool wait for a connection; when the calls holding them time out the
breaker opens, and the waiters then fail fast instead of spending a timeout of their own.
(How long that takes is measured by benchmarks/bench_hung_calls.py, not asserted here.)
"""

from __future__ import annotations

import pytest

from guard_core.exceptions import GuardRedisError, RedisUnavailableError
from guard_core.handlers.redis_handler import RedisManager
from guard_core.models import SecurityConfig
from guard_core.testing import LocalRedisServer
from tests.support.faults import pause, resume
from tests.support.workers import run_async_workers

pytestmark = pytest.mark.anyio

POOL = 2
CALLERS = 6


async def test_callers_waiting_for_a_connection_fail_fast_once_redis_is_found_hung(
    private_server: LocalRedisServer,
) -> None:
    config = SecurityConfig(
        redis_url=private_server.url,
        redis_max_connections=POOL,
        redis_socket_timeout=0.3,
        redis_pool_timeout=10,  # waiting for a connection is not what ends these calls
        redis_breaker_base_delay=10,  # and no probe comes during the test
    )
    manager = RedisManager(config)
    await manager.initialize()
    outcomes: list[str] = []

    async def call(index: int) -> None:
        try:
            await manager.get_key("hung", "k")
            outcomes.append("answered")
        except RedisUnavailableError:
            outcomes.append("failed fast")
        except GuardRedisError:
            outcomes.append("timed out")

    pause(private_server)
    try:
        await run_async_workers(CALLERS, call)
    finally:
        resume(private_server)
        await manager.close()
    # the calls in flight when Redis hung spent the timeout (those that held a connection,
    # or shared a round trip of the async face's auto-pipeline); the others did not
    timed_out = outcomes.count("timed out")
    assert 1 <= timed_out <= POOL
    assert sorted(outcomes) == ["failed fast"] * (CALLERS - timed_out) + ["timed out"] * timed_out
