"""The storage layer and its outage journal across instances, written once for both faces.

Two `Guard`s on one real redis-server are two app instances. Each test of a conflict runs in
both orders (either instance writes back first after the outage): the outcome must be the
same, settled by when each change was made.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import weakref
from collections.abc import Callable

import pytest
import redis

from guard_core._shared.concurrency import async_sleep
from guard_core.guard import Guard
from guard_core.handlers.ipban_handler import IPBanManager
from guard_core.handlers.suspatterns_handler import SusPatternsManager
from guard_core.models import SecurityConfig
from guard_core.testing import LocalRedisServer
from tests.support.faults import pause, resume
from tests.support.waits import async_written_back

pytestmark = pytest.mark.anyio

ADDRESS = "203.0.113.7"
NETWORK = "198.51.100.0/24"
IN_NETWORK = "198.51.100.5"
PATTERN = r"outage-marker-\d+"
HEADERS_KEY = "guard_core:security_headers:csp_config"


def layer_config(server: LocalRedisServer, **fields: object) -> SecurityConfig:
    """Fast failure detection; no background flusher unless a test asks for one."""
    settings: dict[str, object] = {
        "redis_url": server.url,
        "redis_connect_timeout": 0.3,
        "redis_socket_timeout": 0.3,
        "redis_breaker_base_delay": 0,
        "redis_breaker_max_delay": 0,
        "redis_state_refresh_interval": 0.001,
        "redis_journal_flush_interval": 3600,
    }
    settings.update(fields)
    return SecurityConfig(**settings)  # type: ignore[arg-type]


def inspector(server: LocalRedisServer) -> redis.Redis:
    return redis.Redis.from_url(server.url, decode_responses=True)


async def write_back(guard: Guard) -> None:
    """Let `guard` notice Redis is back and write back: a probe, calls, then the wait."""
    await guard.redis.ping()
    await guard.ip_bans.list_bans()
    await guard.patterns.get_patterns()
    await guard.headers.get_headers()
    await guard.rate_limiter.check("write-back-probe", limit=1_000_000, window=1)
    await async_written_back(guard.store)  # the flusher, woken by those calls, writes it back


def in_order(first: str, guards: dict[str, Guard]) -> list[Guard]:
    return [guards[first], *(g for name, g in guards.items() if name != first)]


@pytest.mark.parametrize("first", ["holder", "lifter"])
async def test_a_lift_during_an_outage_wins_whoever_writes_back_first(
    private_server: LocalRedisServer, first: str
) -> None:
    config = layer_config(private_server)
    async with Guard(config) as holder, Guard(config) as lifter:
        await holder.ip_bans.ban_ip(ADDRESS, 600)
        await holder.ip_bans.ban_ip(NETWORK, 600)
        await holder.patterns.add_pattern(PATTERN)
        private_server.stop()
        await lifter.ip_bans.unban_ip(ADDRESS)  # lifts made after the bans, during the outage
        await lifter.ip_bans.unban_ip(NETWORK)
        await lifter.patterns.remove_pattern(PATTERN)
        assert (await lifter.health()).pending_writes["ip_bans"] == 2
        private_server.start()  # empty: each instance writes back what it holds
        for guard in in_order(first, {"holder": holder, "lifter": lifter}):
            await write_back(guard)
        for guard in (holder, lifter):
            assert await guard.ip_bans.is_ip_banned(ADDRESS) is False
            assert await guard.ip_bans.is_ip_banned(IN_NETWORK) is False
            assert await guard.ip_bans.list_bans() == []
            assert await guard.patterns.detect("outage-marker-1") == ()
        inspect = inspector(private_server)
        assert inspect.exists(f"guard_core:banned_ips:{ADDRESS}") == 0
        assert PATTERN not in json.loads(inspect.get("guard_core:patterns:custom") or "[]")
        # and a later restart does not bring them back either
        private_server.stop()
        private_server.start()
        for guard in in_order(first, {"holder": holder, "lifter": lifter}):
            await write_back(guard)
        assert await holder.ip_bans.is_ip_banned(ADDRESS) is False
        assert await holder.patterns.detect("outage-marker-1") == ()
        inspect.close()


@pytest.mark.parametrize("first", ["lifter", "banner"])
async def test_a_ban_made_after_a_lift_wins_whoever_writes_back_first(
    private_server: LocalRedisServer, first: str
) -> None:
    config = layer_config(private_server)
    async with Guard(config) as lifter, Guard(config) as banner:
        await banner.ip_bans.ban_ip(ADDRESS, 600)
        await banner.patterns.add_pattern(PATTERN)
        private_server.stop()
        await lifter.ip_bans.unban_ip(ADDRESS)
        await lifter.patterns.remove_pattern(PATTERN)
        await async_sleep(0.01)
        await banner.ip_bans.ban_ip(ADDRESS, 600, reason="again")  # after the lift
        await banner.ip_bans.ban_ip(NETWORK, 600)
        await banner.patterns.add_pattern(PATTERN)
        private_server.start()
        for guard in in_order(first, {"lifter": lifter, "banner": banner}):
            await write_back(guard)
        for guard in (lifter, banner):
            assert await guard.ip_bans.is_ip_banned(ADDRESS) is True
            assert await guard.ip_bans.is_ip_banned(IN_NETWORK) is True
            assert [m.pattern for m in await guard.patterns.detect("outage-marker-2")] == [PATTERN]
        [record] = [r for r in await lifter.ip_bans.list_bans() if r.target == ADDRESS]
        assert record.reason == "again"


@pytest.mark.parametrize("first", ["early", "late"])
async def test_the_latest_header_configuration_wins_whoever_writes_back_first(
    private_server: LocalRedisServer, first: str
) -> None:
    config = layer_config(private_server)
    async with Guard(config) as early, Guard(config) as late:
        await early.headers.configure(referrer_policy="no-referrer")
        private_server.stop()
        await early.headers.configure(referrer_policy="origin")
        await async_sleep(0.01)
        await late.headers.configure(referrer_policy="same-origin")
        private_server.start()
        for guard in in_order(first, {"early": early, "late": late}):
            await write_back(guard)
        for guard in (early, late):
            assert (await guard.headers.get_headers())["Referrer-Policy"] == "same-origin"
            assert guard.headers.pending_write is False
        inspect = inspector(private_server)
        assert json.loads(inspect.get(HEADERS_KEY) or "{}")["referrer_policy"] == "same-origin"
        inspect.close()


async def test_an_idle_instance_writes_back_by_itself(private_server: LocalRedisServer) -> None:
    config = layer_config(private_server, redis_journal_flush_interval=0.02)
    inspect = inspector(private_server)
    async with Guard(config) as guard:
        private_server.stop()
        await guard.ip_bans.ban_ip(ADDRESS, 600)
        await guard.patterns.add_pattern(PATTERN)
        private_server.start()
        # no call reaches this guard from now on: its flusher must notice Redis is back
        for _ in range(250):
            if inspect.exists(f"guard_core:banned_ips:{ADDRESS}") and inspect.get(
                "guard_core:patterns:custom"
            ):
                break
            await async_sleep(0.02)
        assert inspect.exists(f"guard_core:banned_ips:{ADDRESS}") == 1
        assert json.loads(inspect.get("guard_core:patterns:custom") or "[]") == [PATTERN]
        assert (await guard.health()).pending_writes == dict.fromkeys(
            ("ip_bans", "patterns", "headers", "rate_limits", "allow_list"), 0
        )
    inspect.close()


async def test_an_idle_instance_rewrites_its_state_after_a_restart(
    private_server: LocalRedisServer,
) -> None:
    config = layer_config(private_server, redis_journal_flush_interval=0.02)
    inspect = inspector(private_server)
    async with Guard(config) as guard:
        await guard.ip_bans.ban_ip(ADDRESS, 600)
        private_server.stop()
        private_server.start()  # empty, and nothing calls the guard
        for _ in range(250):
            if inspect.exists(f"guard_core:banned_ips:{ADDRESS}"):
                break
            await async_sleep(0.02)
        assert inspect.exists(f"guard_core:banned_ips:{ADDRESS}") == 1
    inspect.close()


async def test_close_writes_back_what_redis_has_not_taken(
    private_server: LocalRedisServer,
) -> None:
    config = layer_config(private_server)
    guard = Guard(config)
    await guard.start()
    private_server.stop()
    await guard.ip_bans.ban_ip(ADDRESS, 600)
    await guard.headers.configure(referrer_policy="origin")
    private_server.start()
    await guard.close()  # a graceful shutdown right after the outage
    inspect = inspector(private_server)
    assert inspect.exists(f"guard_core:banned_ips:{ADDRESS}") == 1
    assert json.loads(inspect.get(HEADERS_KEY) or "{}")["referrer_policy"] == "origin"
    inspect.close()


async def test_close_with_redis_still_down_says_what_is_lost(
    private_server: LocalRedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    config = layer_config(private_server, redis_close_flush_timeout=0.5)
    guard = Guard(config)
    await guard.start()
    private_server.stop()
    await guard.ip_bans.ban_ip(ADDRESS, 600)
    await guard.patterns.add_pattern(PATTERN)
    caplog.set_level(logging.WARNING, logger="guard_core")
    await guard.close()  # returns: Redis cannot be reached within the flush timeout
    lost = [r.getMessage() for r in caplog.records if "Closing with" in r.getMessage()]
    assert lost == [
        "Closing with 2 changes Redis has not taken: they are lost"
        " (bans and lifts: 1, custom pattern changes: 1)"
    ]


async def test_a_reset_during_an_outage_reaches_redis(private_server: LocalRedisServer) -> None:
    config = layer_config(private_server)
    async with Guard(config) as guard, Guard(config) as other:

        async def admitted(g: Guard) -> bool:
            return (await g.rate_limiter.check("client-1", limit=2, window=600)).allowed

        assert [await admitted(guard) for _ in range(3)] == [True, True, False]
        pause(private_server)  # hung: Redis keeps its data
        try:
            await guard.rate_limiter.reset("client-1")  # times out: kept for later
            assert (await guard.health()).pending_writes["rate_limits"] == 1
        finally:
            resume(private_server)
        await write_back(guard)
        assert (await guard.health()).pending_writes["rate_limits"] == 0
        assert await admitted(other) is True  # the shared window was reset
        assert await admitted(guard) is True
        assert await admitted(other) is False


async def test_bans_are_listed_without_scanning_the_keyspace(
    private_server: LocalRedisServer, make_guard_for_user: Callable[[str], Guard]
) -> None:
    async with make_guard_for_user("no-scan") as banner, make_guard_for_user("no-scan") as lister:
        await banner.ip_bans.ban_ip(ADDRESS, 600, reason="listed")
        await banner.ip_bans.ban_ip(NETWORK, 600)
        records = await lister.ip_bans.list_bans()  # knows of them only through Redis
        assert [(r.target, r.shared) for r in records] == [(NETWORK, True), (ADDRESS, True)]
        assert records[1].reason == "listed"
        assert await lister.ip_bans.is_ip_banned(IN_NETWORK) is True


@pytest.fixture
def make_guard_for_user(private_server: LocalRedisServer) -> Callable[[str], Guard]:
    """A Guard logged in as an ACL user who may not SCAN or KEYS (anything else allowed)."""

    def make(user: str) -> Guard:
        inspect = inspector(private_server)
        inspect.acl_setuser(
            user,
            enabled=True,
            passwords=["+secret-pw"],
            keys=["*"],
            commands=["+@all", "-scan", "-keys"],
        )
        inspect.close()
        url = private_server.url.replace("redis://", f"redis://{user}:secret-pw@")
        return Guard(layer_config(private_server, redis_url=url))

    return make


async def test_subsystems_of_one_guard_share_the_guards_store_which_dies_with_it() -> None:
    config = SecurityConfig(enable_redis=False)
    guard = Guard(config)
    subsystems = (guard.ip_bans, guard.patterns, guard.headers, guard.cloud)
    assert all(subsystem._store is guard.store for subsystem in subsystems)
    assert guard.rate_limiter._store._store is guard.store
    assert guard.behavior._store._store is guard.store
    # a subsystem made on its own has a store of its own; one given a store of another
    # config or manager is refused
    alone = IPBanManager(config, guard.redis)
    assert alone._store is not guard.store
    with pytest.raises(ValueError, match="same config and Redis manager"):
        IPBanManager(dataclasses.replace(config), guard.redis, store=guard.store)
    with pytest.raises(ValueError, match="same config and Redis manager"):
        SusPatternsManager(config, None, store=guard.store)
    store = weakref.ref(guard.store)
    del guard, subsystems
    gc.collect()
    assert store() is None  # no registry keeps stores (and their journals) alive
