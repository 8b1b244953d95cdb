"""Changes pushed between instances: two `Guard`s on one real redis-server.

The refresh interval is an hour here, so only a pushed invalidation can make one instance
see another's change; each wait below is bounded, and fails the test when it runs out.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
import redis

from guard_core._shared.concurrency import async_sleep
from guard_core.guard import Guard
from guard_core.models import SecurityConfig
from guard_core.testing import LocalRedisServer
from tests.support.waits import async_written_back

pytestmark = pytest.mark.anyio

ADDRESS = "203.0.113.9"
NETWORK = "198.51.100.0/24"
IN_NETWORK = "198.51.100.77"
PATTERN = r"pushed-marker-\d+"
BAN_KEY = f"guard_core:banned_ips:{ADDRESS}"
PATTERNS_KEY = "guard_core:patterns:custom"
WAIT_LIMIT = 10.0  # seconds before a wait gives up (a failure, never a speed figure)


def pushed_config(server: LocalRedisServer, **fields: object) -> SecurityConfig:
    settings: dict[str, object] = {
        "redis_url": server.url,
        "redis_state_refresh_interval": 3600,
        "redis_connect_timeout": 0.3,
        "redis_socket_timeout": 0.3,
        "redis_breaker_base_delay": 0,
        "redis_breaker_max_delay": 0,
    }
    settings.update(fields)
    return SecurityConfig(**settings)  # type: ignore[arg-type]


def inspector(server: LocalRedisServer) -> redis.Redis:
    return redis.Redis.from_url(server.url, decode_responses=True)


def get_calls(inspect: redis.Redis) -> int:
    stats: dict[str, dict[str, int]] = inspect.info("commandstats")
    return int(stats.get("cmdstat_get", {}).get("calls", 0))


def ban_json(seconds: float) -> str:
    now = time.time()
    return json.dumps({"expires_at": now + seconds, "banned_at": now, "reason": "direct"})


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_LIMIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        await async_sleep(0.005)


async def subscribed(guard: Guard, after: int = 0) -> None:
    await wait_until(
        lambda: (
            guard.store.invalidations.subscribed and guard.store.invalidations.subscriptions > after
        ),
        "a confirmed subscription",
    )


async def banned_eventually(guard: Guard, address: str, expected: bool) -> None:
    deadline = time.monotonic() + WAIT_LIMIT
    while await guard.ip_bans.is_ip_banned(address) is not expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"{address} never became banned={expected}")
        await async_sleep(0.005)


async def test_ban_checks_answer_from_the_cache_without_reading_redis(
    redis_server: LocalRedisServer,
) -> None:
    inspect = inspector(redis_server)
    inspect.flushall()
    async with Guard(pushed_config(redis_server)) as guard:
        await subscribed(guard)
        await guard.ip_bans.ban_ip("203.0.113.10", 600)
        assert await guard.ip_bans.is_ip_banned(ADDRESS) is False  # read once, then held
        assert await guard.ip_bans.is_ip_banned("203.0.113.10") is True
        before = get_calls(inspect)
        for _ in range(50):
            assert await guard.ip_bans.is_ip_banned(ADDRESS) is False
            assert await guard.ip_bans.is_ip_banned("203.0.113.10") is True
        assert get_calls(inspect) == before
        # proof the answer is held here: a ban written behind the library's back is unseen
        inspect.set(BAN_KEY, ban_json(600), ex=600)
        assert await guard.ip_bans.is_ip_banned(ADDRESS) is False
    inspect.close()


async def test_bans_and_lifts_on_one_instance_reach_the_other(
    redis_server: LocalRedisServer,
) -> None:
    inspect = inspector(redis_server)
    inspect.flushall()
    config = pushed_config(redis_server)
    async with Guard(config) as first, Guard(config) as second:
        await subscribed(first)
        await subscribed(second)
        for address in (ADDRESS, IN_NETWORK):
            assert await first.ip_bans.is_ip_banned(address) is False  # held "not banned"
        await second.ip_bans.ban_ip(ADDRESS, 600)
        await banned_eventually(first, ADDRESS, True)
        await second.ip_bans.ban_ip(NETWORK, 600)
        await banned_eventually(first, IN_NETWORK, True)
        await second.ip_bans.unban_ip(ADDRESS)
        await banned_eventually(first, ADDRESS, False)
        await second.ip_bans.unban_ip(NETWORK)
        await banned_eventually(first, IN_NETWORK, False)
        # and the other way round
        await first.ip_bans.ban_ip(ADDRESS, 600)
        await banned_eventually(second, ADDRESS, True)
    inspect.close()


async def test_pattern_and_header_changes_reach_the_other_instance(
    redis_server: LocalRedisServer,
) -> None:
    inspect = inspector(redis_server)
    inspect.flushall()
    config = pushed_config(redis_server)
    async with Guard(config) as first, Guard(config) as second:
        await subscribed(first)
        await subscribed(second)
        assert await first.patterns.detect("pushed-marker-42") == ()
        headers = await first.headers.get_headers()
        assert headers.get("X-Frame-Options") != "SAMEORIGIN"
        await second.patterns.add_pattern(PATTERN)
        await second.headers.configure(frame_options="SAMEORIGIN")
        deadline = time.monotonic() + WAIT_LIMIT
        while not await first.patterns.detect("pushed-marker-42"):
            assert time.monotonic() < deadline, "the pattern never arrived"
            await async_sleep(0.005)
        while (await first.headers.get_headers()).get("X-Frame-Options") != "SAMEORIGIN":
            assert time.monotonic() < deadline, "the header configuration never arrived"
            await async_sleep(0.005)
        await second.patterns.remove_pattern(PATTERN)
        while await first.patterns.detect("pushed-marker-42"):
            assert time.monotonic() < deadline, "the pattern's removal never arrived"
            await async_sleep(0.005)
    inspect.close()


async def test_a_killed_subscription_empties_the_cache_until_it_is_back(
    redis_server: LocalRedisServer,
) -> None:
    inspect = inspector(redis_server)
    inspect.flushall()
    config = pushed_config(redis_server)
    async with Guard(config) as first, Guard(config) as second:
        await subscribed(first)
        await subscribed(second)
        assert await first.ip_bans.is_ip_banned(ADDRESS) is False
        assert await first.patterns.detect("pushed-marker-7") == ()
        # changes nobody is told about
        inspect.set(BAN_KEY, ban_json(600), ex=600)
        inspect.set(PATTERNS_KEY, json.dumps([PATTERN]))
        assert await first.ip_bans.is_ip_banned(ADDRESS) is False  # still held
        assert await first.patterns.detect("pushed-marker-7") == ()
        count = first.store.invalidations.subscriptions
        killed = inspect.client_kill_filter(_type="pubsub")
        assert killed >= 2  # both instances' subscriptions
        await subscribed(first, after=count)
        # what was published while it was down is unknown: nothing held survives
        assert await first.ip_bans.is_ip_banned(ADDRESS) is True
        assert await first.patterns.detect("pushed-marker-7") != ()
        # and the new subscription carries changes again
        await second.ip_bans.unban_ip(ADDRESS)
        await banned_eventually(first, ADDRESS, False)
    inspect.close()


async def test_a_redis_restart_empties_the_cache_and_pushes_resume(
    private_server: LocalRedisServer,
) -> None:
    config = pushed_config(private_server)
    async with Guard(config) as first, Guard(config) as second:
        await subscribed(first)
        await subscribed(second)
        assert await first.ip_bans.is_ip_banned(ADDRESS) is False
        count = first.store.invalidations.subscriptions
        private_server.stop()
        await wait_until(lambda: not first.store.invalidations.subscribed, "the drop noticed")
        private_server.start()
        inspect = inspector(private_server)
        inspect.set(BAN_KEY, ban_json(600), ex=600)  # unannounced, on the new server
        await subscribed(first, after=count)
        await banned_eventually(first, ADDRESS, True)
        await async_written_back(first.store)  # verdicts are held once the restart is answered
        assert await first.ip_bans.is_ip_banned(ADDRESS) is True
        assert first.store.bans.cached_verdict(ADDRESS) is True  # held again
        await second.ip_bans.unban_ip(ADDRESS)
        await banned_eventually(first, ADDRESS, False)
        inspect.close()


async def test_an_open_breaker_withdraws_the_cache(private_server: LocalRedisServer) -> None:
    config = pushed_config(private_server, redis_breaker_base_delay=30, redis_breaker_max_delay=30)
    async with Guard(config) as guard:
        await subscribed(guard)
        await guard.ip_bans.ban_ip(ADDRESS, 600)
        assert await guard.ip_bans.is_ip_banned(ADDRESS) is True
        assert await guard.ip_bans.is_ip_banned("203.0.113.11") is False
        private_server.stop()
        assert await guard.redis.ping() is False  # the breaker opens
        assert guard.store.bans.cached_verdict(ADDRESS) is None
        # answered from memory: this instance's own ban, and nothing else
        assert await guard.ip_bans.is_ip_banned(ADDRESS) is True
        assert await guard.ip_bans.is_ip_banned("203.0.113.11") is False


async def test_a_pool_of_one_connection_is_left_to_the_application(
    redis_server: LocalRedisServer,
) -> None:
    config = pushed_config(redis_server, redis_max_connections=1)
    async with Guard(config) as guard:
        await async_sleep(0.2)  # several subscription attempts' worth
        assert not guard.store.invalidations.subscribed
        await guard.ip_bans.ban_ip(ADDRESS, 600)
        assert await guard.ip_bans.is_ip_banned(ADDRESS) is True
        assert guard.store.bans.cached_verdict(ADDRESS) is None
