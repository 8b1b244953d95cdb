"""A JSON document stored by anyone with access to Redis never breaks a check (both faces).

Each document guard-core reads (a ban record, the network-ban index, the custom patterns,
the header configuration, cached cloud ranges) is replaced by JSON nested far deeper than
the parser recurses, and by a value that is no JSON at all: every read answers (the value
ignored as malformed) instead of raising, whether it runs in a request or in the follower.
"""

from __future__ import annotations

import logging

import pytest
import redis

from guard_core.guard import Guard
from guard_core.models import SecurityConfig
from guard_core.testing import LocalRedisServer, free_port
from tests.support.waits import async_written_back

pytestmark = pytest.mark.anyio

ADDRESS = "203.0.113.70"
NETWORK = "198.51.100.0/24"
IN_NETWORK = "198.51.100.9"
DEEP = "[" * 200_000 + "]" * 200_000
HOSTILE = [DEEP, '{"expires_at": ' + DEEP + "}", "\xff not json {"]


def hostile_config(server: LocalRedisServer) -> SecurityConfig:
    return SecurityConfig(
        redis_url=server.url,
        redis_state_refresh_interval=0.001,
        cloud_providers=("AWS",),
        # nothing to fetch: a loopback port nobody listens on
        cloud_ip_urls={"AWS": f"http://127.0.0.1:{free_port()}/ranges.json"},
    )


@pytest.mark.parametrize("value", HOSTILE, ids=["deep", "deep-field", "garbage"])
async def test_hostile_stored_json_is_ignored_by_every_read(
    private_server: LocalRedisServer, value: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = hostile_config(private_server)
    prefix = config.redis_prefix
    inspect = redis.Redis.from_url(private_server.url, decode_responses=True)
    try:
        async with Guard(config) as guard:
            await guard.ip_bans.ban_ip(ADDRESS, 600)
            await guard.ip_bans.ban_ip(NETWORK, 600)
            await guard.patterns.add_pattern(r"stored-marker-\d+")
            await guard.headers.configure(custom_headers={"X-Stored": "1"})
            await async_written_back(guard.store)
            inspect.set(f"{prefix}banned_ips:{ADDRESS}", value, ex=600)
            inspect.hset(f"{prefix}banned_networks:index", NETWORK, value)
            inspect.hincrby(f"{prefix}banned_networks:index", "#version", 1)
            inspect.set(f"{prefix}patterns:custom", value)
            inspect.set(f"{prefix}security_headers:csp_config", value)
            inspect.set(f"{prefix}cloud_ranges:AWS", value, ex=600)
            # another instance starts on these documents: its catch-up (the follower) reads
            # every one of them, then requests read them again
            async with Guard(config) as other:
                for checker in (guard, other):
                    made_here = checker is guard
                    # an unreadable record of an address: banned, its end unknown
                    assert await checker.ip_bans.is_ip_banned(ADDRESS) is True
                    # an unreadable network record bans nothing (Redis holds no ban of it)
                    assert await checker.ip_bans.is_ip_banned(IN_NETWORK) is False
                    assert await checker.ip_bans.list_bans() == []
                    # the instance that added the pattern and configured the header keeps
                    # them; the other knows of neither
                    custom = (await checker.patterns.get_patterns()).custom
                    assert custom == ((r"stored-marker-\d+",) if made_here else ())
                    headers = await checker.headers.get_headers("/")
                    assert headers.get("X-Stored") == ("1" if made_here else None)
                    assert headers["X-Frame-Options"] == "DENY"
                    assert await checker.cloud.is_cloud_ip("192.0.2.1", {"AWS"}) is False
                health = await other.health()
                assert health.status == "redis"
    finally:
        inspect.close()
    # the followers log (and swallow) what raises in them: nothing did
    followers = [r for r in caplog.records if r.name == "guard_core.invalidation"]
    assert not [r.getMessage() for r in followers if r.levelno >= logging.ERROR]
