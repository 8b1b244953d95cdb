"""The async face under trio: Redis needs asyncio, and says so; without Redis all works.

redis.asyncio runs on asyncio only. Under trio a Redis-enabled guard used to start in
degraded mode with "no running event loop" as the only clue, reporting an outage that was
not there. Async face only: the sync face runs on threads.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

from guard_core import Guard, SecurityConfig, UnsupportedBackendError
from guard_core.handlers.redis_handler import RedisManager
from guard_core.testing import LocalRedisServer
from tests.support.agents import AsyncRecordingAgent


def run_under_trio(main: Any, *args: Any) -> Any:
    return anyio.run(main, *args, backend="trio")


def test_redis_under_trio_raises_a_clear_error_and_reports_no_outage(
    redis_server: LocalRedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="guard_core")
    guard = Guard(SecurityConfig(redis_url=redis_server.url))
    agent = AsyncRecordingAgent()

    async def main() -> None:
        await guard.redis.initialize_agent(agent)
        with pytest.raises(UnsupportedBackendError) as raised:
            await guard.start()
        message = str(raised.value)
        assert "asyncio backend" in message and "enable_redis=False" in message
        assert isinstance(raised.value, RuntimeError)
        # the subsystems and the manager say the same, rather than fall back to memory
        with pytest.raises(UnsupportedBackendError):
            await guard.ip_bans.is_ip_banned("203.0.113.7")
        with pytest.raises(UnsupportedBackendError):
            await guard.redis.get_key("ns", "k")
        with pytest.raises(UnsupportedBackendError):
            async with guard.redis.get_connection():
                pass
        with pytest.raises(UnsupportedBackendError):
            await guard.health()

    run_under_trio(main)
    assert guard.redis.available
    assert guard.redis.breaker_snapshot()["failures"] == 0
    assert agent.events == []
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert not any("degraded" in r.getMessage() for r in caplog.records)


def test_the_same_guard_runs_on_asyncio(redis_server: LocalRedisServer) -> None:
    async def main() -> str:
        async with Guard(SecurityConfig(redis_url=redis_server.url)) as guard:
            return (await guard.health()).status

    assert anyio.run(main, backend="asyncio") == "redis"


def test_without_redis_everything_works_under_trio() -> None:
    async def main() -> None:
        async with Guard(SecurityConfig(enable_redis=False)) as guard:
            assert (await guard.health()).status == "disabled"
            await guard.ip_bans.ban_ip("203.0.113.7", 60, reason="probe")
            assert await guard.ip_bans.is_ip_banned("203.0.113.7") is True
            verdicts = [(await guard.rate_limiter.check("c", limit=2, window=60)).allowed]
            verdicts += [(await guard.rate_limiter.check("c", limit=2, window=60)).allowed]
            verdicts += [(await guard.rate_limiter.check("c", limit=2, window=60)).allowed]
            assert verdicts == [True, True, False]
            assert {m.category for m in await guard.patterns.detect("<script>")} == {"xss"}
        disabled = RedisManager(SecurityConfig(enable_redis=False))
        await disabled.initialize()
        assert await disabled.get_key("ns", "k") is None

    run_under_trio(main)
