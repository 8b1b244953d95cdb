"""`Guard`: one entry point over every subsystem, written once for both faces."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import httpx
import pytest

from guard_core._shared.concurrency import async_sleep
from guard_core.exceptions import GuardRedisError
from guard_core.guard import Guard
from guard_core.handlers.behavior_handler import BehaviorTracker
from guard_core.handlers.cloud_handler import CloudManager
from guard_core.handlers.ipban_handler import IPBanManager
from guard_core.handlers.ratelimit_handler import RateLimitManager
from guard_core.handlers.redis_handler import RedisManager
from guard_core.handlers.security_headers_handler import SecurityHeadersManager
from guard_core.handlers.suspatterns_handler import SusPatternsManager
from guard_core.models import SecurityConfig
from guard_core.testing import LocalRedisServer, free_port
from tests.support.waits import async_written_back

pytestmark = pytest.mark.anyio

DATA = Path(__file__).resolve().parent.parent / "data"


def published_ranges(request: httpx.Request) -> httpx.Response:
    """The providers' range files, served from tests/data (never the internet)."""
    files = {"aws.test": "aws_ip_ranges.json", "gcp.test": "gcp_cloud.json"}
    name = files.get(request.url.host)
    if name is None:
        return httpx.Response(404)
    return httpx.Response(200, content=(DATA / name).read_bytes())


def config_for(url: str, **fields: object) -> SecurityConfig:
    return SecurityConfig(
        redis_url=url,
        redis_connect_timeout=0.5,
        redis_state_refresh_interval=0.001,
        redis_breaker_base_delay=0.05,
        cloud_providers=("AWS", "GCP"),
        cloud_ip_urls={"AWS": "https://aws.test/ranges.json", "GCP": "https://gcp.test/c.json"},
        **fields,  # type: ignore[arg-type]
    )


async def test_builds_every_subsystem_over_one_manager(redis_server: LocalRedisServer) -> None:
    async with Guard(config_for(redis_server.url)) as guard:
        assert isinstance(guard.redis, RedisManager)
        assert isinstance(guard.rate_limiter, RateLimitManager)
        assert isinstance(guard.ip_bans, IPBanManager)
        assert isinstance(guard.cloud, CloudManager)
        assert isinstance(guard.patterns, SusPatternsManager)
        assert isinstance(guard.headers, SecurityHeadersManager)
        assert isinstance(guard.behavior, BehaviorTracker)
        health = await guard.health()
        assert health.status == "redis"
        assert set(health.subsystems.values()) == {"shared"}
        assert await guard.ip_bans.ban_ip("203.0.113.99", 60)
        assert await guard.ip_bans.is_ip_banned("203.0.113.99")
        await guard.ip_bans.unban_ip("203.0.113.99")


async def test_two_guards_on_one_redis_share_state(redis_server: LocalRedisServer) -> None:
    config = config_for(redis_server.url, redis_prefix="shared-test:")
    async with Guard(config) as first, Guard(config) as second:
        await first.ip_bans.ban_ip("198.51.100.23", 60, reason="shared")
        assert await second.ip_bans.is_ip_banned("198.51.100.23")

        assert (await first.rate_limiter.check("client", limit=2, window=60)).allowed
        assert (await second.rate_limiter.check("client", limit=2, window=60)).allowed
        assert not (await first.rate_limiter.check("client", limit=2, window=60)).allowed

        await first.patterns.add_pattern(r"evil-token-\d+")
        found = await second.patterns.detect("payload evil-token-42 here")
        assert any(match.pattern == r"evil-token-\d+" for match in found)

        await first.headers.configure(frame_options="SAMEORIGIN")
        assert (await second.headers.get_headers())["X-Frame-Options"] == "SAMEORIGIN"
        await first.redis.delete_pattern("*")


async def test_starts_degraded_with_one_warning_then_reconnects(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    caplog.set_level(logging.INFO, logger="guard_core")
    # a fixed probe delay: failed probes while Redis is away must not push the next one out
    config = config_for(f"redis://127.0.0.1:{port}/0", redis_breaker_max_delay=0.05)
    async with Guard(config) as guard:
        health = await guard.health()
        assert health.status == "degraded"
        assert set(health.subsystems.values()) == {"memory"}
        assert await guard.ip_bans.ban_ip("192.0.2.44", 60)
        assert await guard.ip_bans.is_ip_banned("192.0.2.44")
        assert (await guard.rate_limiter.check("x", limit=1, window=60)).allowed
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        degraded = await guard.health()
        pending = {"ip_bans": 1, "patterns": 0, "headers": 0, "rate_limits": 0, "allow_list": 0}
        assert degraded.pending_writes == pending
        assert degraded.redis["breaker"]["state"] == "open"
        with LocalRedisServer(port=port):
            status = (await guard.health()).status
            for _ in range(250):  # a probe is due within 0.05 s; allow a slow machine 5 s
                if status == "redis":
                    break
                await async_sleep(0.02)
                status = (await guard.health()).status
            assert status == "redis"
            assert await guard.ip_bans.is_ip_banned("192.0.2.44")  # wakes the flusher
            await async_written_back(guard.store)
            assert (await guard.health()).pending_writes["ip_bans"] == 0
            assert await guard.redis.exists("banned_ips", "192.0.2.44") is True
            assert await guard.ip_bans.ban_ip("192.0.2.45", 60)
            assert await guard.redis.exists("banned_ips", "192.0.2.45") is True


async def test_health_counts_the_live_instances_sharing_rate_limits(
    redis_server: LocalRedisServer,
) -> None:
    config = config_for(
        redis_server.url, redis_prefix="live-count:", redis_journal_flush_interval=0.02
    )

    async def live(guard: Guard, count: int) -> None:
        for _ in range(250):  # heartbeats every 20 ms
            if (await guard.health()).live_instances == count:
                return
            await async_sleep(0.02)
        assert (await guard.health()).live_instances == count

    async with Guard(config) as first:
        await live(first, 1)
        async with Guard(config) as second:
            await live(first, 2)
            await live(second, 2)
        await live(first, 1)  # the second left as it closed


async def test_disabled() -> None:
    config = dataclasses.replace(config_for("redis://127.0.0.1:1/0"), enable_redis=False)
    async with Guard(config) as guard:
        health = await guard.health()
        assert health.status == "disabled"
        assert set(health.subsystems.values()) == {"memory"}
        assert await guard.ip_bans.ban_ip("192.0.2.7", 60)
        assert await guard.ip_bans.is_ip_banned("192.0.2.7")


async def test_cloud_lookups_through_the_guard(redis_server: LocalRedisServer) -> None:
    client = httpx.AsyncClient(transport=httpx.MockTransport(published_ranges))
    async with Guard(config_for(redis_server.url), http_client=client) as guard:
        await guard.cloud.refresh()
        assert await guard.cloud.provider_of("198.51.100.7") == "AWS"
        assert await guard.cloud.provider_of("203.0.113.9") == "GCP"
        assert await guard.cloud.is_cloud_ip("192.0.2.1") is False
        assert await guard.redis.exists("cloud_ranges", "AWS") is True
    await client.aclose()


async def test_everything_is_closed_on_exit(redis_server: LocalRedisServer) -> None:
    async with Guard(config_for(redis_server.url)) as guard:
        assert await guard.redis.set_key("ns", "k", "v")
    with pytest.raises(GuardRedisError):
        await guard.redis.get_key("ns", "k")
    assert (await guard.health()).status == "degraded"
    # subsystems still answer, from memory
    assert (await guard.rate_limiter.check("after", limit=1, window=60)).allowed
