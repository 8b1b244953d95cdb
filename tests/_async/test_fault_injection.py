"""Faults injected into a real redis-server while every subsystem is in use (both faces).

In every case: no exception escapes a subsystem API, no ban is lost, and the guard returns
to shared-Redis mode by itself. Latency is measured in benchmarks/, not asserted here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis

from guard_core._shared.concurrency import async_sleep
from guard_core.guard import Guard
from guard_core.models import SecurityConfig
from guard_core.testing import LocalRedisServer
from tests.support.faults import kill, pause, resume
from tests.support.waits import async_written_back
from tests.support.workers import ASYNC_WORKERS, run_async_workers

pytestmark = pytest.mark.anyio

DATA = Path(__file__).resolve().parent.parent / "data"
BANNED = "203.0.113.10"


def aws_ranges(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=(DATA / "aws_ip_ranges.json").read_bytes())


def fault_config(server: LocalRedisServer) -> SecurityConfig:
    return SecurityConfig(
        redis_url=server.url,
        redis_prefix="fault:",
        redis_connect_timeout=0.3,
        redis_socket_timeout=0.3,
        redis_breaker_base_delay=0.05,
        redis_breaker_max_delay=0.2,
        redis_state_refresh_interval=0.01,
        cloud_providers=("AWS",),
        cloud_ip_urls={"AWS": "https://aws.test/ip-ranges.json"},
    )


@pytest.fixture
async def guards(private_server: LocalRedisServer) -> AsyncIterator[tuple[Guard, Guard]]:
    """Two app instances on the private server: the one under test and an observer."""
    config = fault_config(private_server)
    client = httpx.AsyncClient(transport=httpx.MockTransport(aws_ranges))
    async with (
        Guard(config, http_client=client) as guard,
        Guard(config, http_client=client) as observer,
    ):
        await guard.ip_bans.ban_ip(BANNED, 600, reason="before the fault")
        await guard.patterns.add_pattern(r"fault-marker-\d+")
        await guard.headers.configure(frame_options="SAMEORIGIN")
        yield guard, observer
    await client.aclose()


@pytest.fixture
def inspect(private_server: LocalRedisServer) -> redis.Redis:
    return redis.Redis.from_url(private_server.url, decode_responses=True)


async def exercise(guard: Guard, client: str) -> None:
    """One call of each subsystem; each must answer with its documented type."""
    assert isinstance(await guard.ip_bans.is_ip_banned(client), bool)
    verdict = await guard.rate_limiter.check(client, limit=10_000, window=60)
    assert isinstance(verdict.allowed, bool)
    assert isinstance(
        await guard.behavior.track_usage("/x", client, threshold=10_000, window=60), bool
    )
    assert any(m.category == "xss" for m in await guard.patterns.detect("<script>x</script>"))
    assert "X-Frame-Options" in await guard.headers.get_headers("/")
    assert isinstance(await guard.cloud.is_cloud_ip(client), bool)


async def wait_until_shared(guard: Guard) -> None:
    for _ in range(200):
        if (await guard.health()).status == "redis":
            return
        await async_sleep(0.025)
    health = await guard.health()
    raise AssertionError(f"never returned to shared mode: {health}")


async def assert_state_is_shared_again(guard: Guard, observer: Guard) -> None:
    """The ban, the pattern and the headers made by `guard` reach `observer` through Redis."""
    await wait_until_shared(guard)
    await wait_until_shared(observer)
    await exercise(guard, "192.0.2.1")  # wakes the flusher, which writes back what it holds
    await async_written_back(guard.store)
    await async_sleep(0.02)  # one refresh interval
    assert await guard.ip_bans.is_ip_banned(BANNED)
    assert await observer.ip_bans.is_ip_banned(BANNED)
    assert await guard.redis.exists("banned_ips", BANNED) is True
    assert [m.category for m in await observer.patterns.detect("fault-marker-7")] == ["custom"]
    assert (await observer.headers.get_headers("/"))["X-Frame-Options"] == "SAMEORIGIN"


@pytest.mark.parametrize("fault", ["sigkill", "stop"])
async def test_server_dies_mid_load_and_restarts_empty_on_the_same_port(
    guards: tuple[Guard, Guard], private_server: LocalRedisServer, fault: str
) -> None:
    guard, observer = guards

    async def load(index: int) -> None:
        for step in range(8):
            if index == 0 and step == 2:
                kill(private_server) if fault == "sigkill" else private_server.stop()
            await exercise(guard, f"198.51.100.{index % 250}")

    await run_async_workers(ASYNC_WORKERS, load)
    assert (await guard.health()).status == "degraded"
    assert await guard.ip_bans.is_ip_banned(BANNED)  # from memory
    assert await guard.ip_bans.ban_ip("203.0.113.11", 600, reason="during the outage")
    private_server.start()  # no data: everything shared must be written again
    await assert_state_is_shared_again(guard, observer)
    assert await observer.ip_bans.is_ip_banned("203.0.113.11")


async def test_hung_server_then_resumed(
    guards: tuple[Guard, Guard], private_server: LocalRedisServer
) -> None:
    guard, observer = guards
    pause(private_server)
    try:
        for index in range(5):
            await exercise(guard, f"198.51.100.{index}")
        assert (await guard.health()).status == "degraded"
        assert await guard.ip_bans.is_ip_banned(BANNED)
        assert await guard.ip_bans.ban_ip("203.0.113.12", 600, reason="during the hang")
    finally:
        resume(private_server)
    await assert_state_is_shared_again(guard, observer)
    assert await observer.ip_bans.is_ip_banned("203.0.113.12")
    assert guard.redis.breaker_snapshot()["times_opened"] >= 1


async def test_script_flush(guards: tuple[Guard, Guard], inspect: redis.Redis) -> None:
    guard, observer = guards
    assert (await guard.rate_limiter.check("flush", limit=5, window=60)).count == 1
    inspect.script_flush()
    assert (await guard.rate_limiter.check("flush", limit=5, window=60)).count == 2
    assert (await observer.rate_limiter.check("flush", limit=5, window=60)).count == 3
    await assert_state_is_shared_again(guard, observer)


async def test_client_kill(guards: tuple[Guard, Guard], inspect: redis.Redis) -> None:
    guard, observer = guards
    assert inspect.client_kill_filter(_type="normal", skipme=True) >= 1
    for index in range(3):
        await exercise(guard, f"198.51.100.{index}")
    await assert_state_is_shared_again(guard, observer)


async def test_out_of_memory_replies(guards: tuple[Guard, Guard], inspect: redis.Redis) -> None:
    guard, observer = guards
    inspect.config_set("maxmemory-policy", "noeviction")
    inspect.config_set("maxmemory", "1")
    try:
        for index in range(3):
            await exercise(guard, f"198.51.100.{index}")
        assert await guard.ip_bans.ban_ip("203.0.113.13", 600, reason="during OOM")
        assert await guard.ip_bans.is_ip_banned("203.0.113.13")  # kept here
        assert not await observer.ip_bans.is_ip_banned("203.0.113.13")  # Redis refused it
        await guard.patterns.add_pattern(r"oom-marker-\d+")
    finally:
        inspect.config_set("maxmemory", "0")
    await async_sleep(0.02)  # the pending writes are retried once per refresh interval
    await assert_state_is_shared_again(guard, observer)
    assert await observer.ip_bans.is_ip_banned("203.0.113.13")
    assert [m.category for m in await observer.patterns.detect("oom-marker-1")] == ["custom"]


async def test_wrong_types_inside_our_namespace(
    guards: tuple[Guard, Guard], inspect: redis.Redis
) -> None:
    guard, observer = guards
    planted = [
        "fault:rate_limit:rate:198.51.100.1",
        "fault:behavior_usage:/x:198.51.100.1",
        "fault:security_headers:csp_config",
        "fault:cloud_ranges:AWS",
    ]
    inspect.delete(*planted)
    inspect.rpush(planted[0], "junk")
    inspect.rpush(planted[1], "junk")
    inspect.hset(planted[2], "junk", "1")
    inspect.sadd(planted[3], "junk")
    for _ in range(3):
        await exercise(guard, "198.51.100.1")
    assert (await guard.health()).status == "redis"  # error replies are not an outage
    inspect.delete("fault:patterns:custom")
    inspect.rpush("fault:patterns:custom", "junk")
    await guard.patterns.add_pattern(r"wrongtype-\d+")  # kept locally, no exception
    assert [m.category for m in await guard.patterns.detect("wrongtype-1")] == ["custom"]
    assert await guard.ip_bans.is_ip_banned(BANNED)
    assert await observer.ip_bans.is_ip_banned(BANNED)
