"""IPBanManager in every mode, written once for both faces."""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

import pytest

from guard_core._shared.concurrency import async_sleep
from guard_core.handlers.ipban_handler import IPBanManager
from guard_core.handlers.redis_handler import RedisManager
from guard_core.testing import LocalRedisServer
from tests.support.backends import StateEnv
from tests.support.waits import async_written_back
from tests.support.workers import ASYNC_WORKERS, run_async_workers

pytestmark = pytest.mark.anyio


async def test_ban_check_unban(state_env: StateEnv) -> None:
    bans = IPBanManager(state_env.config, state_env.redis)
    assert await bans.is_ip_banned("203.0.113.7") is False
    assert await bans.ban_ip("203.0.113.7", 600, reason="brute force") is True
    assert await bans.is_ip_banned("203.0.113.7") is True
    assert await bans.is_ip_banned("203.0.113.8") is False
    [record] = await bans.list_bans()
    assert record.target == "203.0.113.7"
    assert 590 < record.remaining() <= 600
    assert record.reason == "brute force"
    assert await bans.unban_ip("203.0.113.7") is True
    assert await bans.is_ip_banned("203.0.113.7") is False
    assert await bans.unban_ip("203.0.113.7") is False
    assert await bans.list_bans() == []


async def test_ban_is_stored_in_redis_with_expiry(shared_env: StateEnv) -> None:
    state_env = shared_env
    bans = IPBanManager(state_env.config, state_env.redis)
    await bans.ban_ip("198.51.100.4", 120)
    await bans.ban_ip("2001:db8::/32", 300)
    assert state_env.inspect is not None
    key = state_env.key
    assert 0 < state_env.inspect.ttl(key("banned_ips", "198.51.100.4")) <= 120
    stored = json.loads(state_env.inspect.get(key("banned_ips", "198.51.100.4")) or "{}")
    assert stored["reason"] == "banned"
    assert stored["expires_at"] - stored["banned_at"] == pytest.approx(120)
    [record] = [r for r in await bans.list_bans() if r.target == "198.51.100.4"]
    assert record.expires_at == pytest.approx(stored["expires_at"], abs=0.01)
    # network bans live in one index: a hash of records and a sorted set of their ends
    index = state_env.inspect.hgetall(key("banned_networks", "index"))
    network = json.loads(index["2001:db8::/32"])
    assert network["expires_at"] - network["banned_at"] == pytest.approx(300)
    end = state_env.inspect.zscore(key("banned_networks_expiry", "index"), "2001:db8::/32")
    assert end == pytest.approx(network["expires_at"])
    # addresses are listed from an index too, never by scanning the keyspace
    assert state_env.inspect.zrange(key("ban_index", "addresses"), 0, -1) == ["198.51.100.4"]


async def test_ipv4_mapped_ipv6_is_the_same_client(state_env: StateEnv) -> None:
    bans = IPBanManager(state_env.config, state_env.redis)
    await bans.ban_ip("::ffff:192.0.2.10", 60)
    assert await bans.is_ip_banned("192.0.2.10") is True
    assert await bans.is_ip_banned("::FFFF:192.0.2.10") is True
    assert [r.target for r in await bans.list_bans()] == ["192.0.2.10"]
    assert await bans.unban_ip("192.0.2.10") is True
    assert await bans.is_ip_banned("::ffff:192.0.2.10") is False


async def test_network_bans_cover_their_addresses(state_env: StateEnv) -> None:
    bans = IPBanManager(state_env.config, state_env.redis)
    await bans.ban_ip("192.0.2.0/24", 60, reason="scanner subnet")
    await bans.ban_ip("2001:db8:1::/48", 60)
    assert await bans.is_ip_banned("192.0.2.200") is True
    assert await bans.is_ip_banned("192.0.3.1") is False
    assert await bans.is_ip_banned("2001:db8:1::99") is True
    assert await bans.is_ip_banned("2001:db8:2::1") is False
    assert await bans.unban_ip("192.0.2.0/24") is True
    assert await bans.is_ip_banned("192.0.2.200") is False


async def test_loopback_is_refused_with_a_warning(
    state_env: StateEnv, caplog: pytest.LogCaptureFixture
) -> None:
    bans = IPBanManager(state_env.config, state_env.redis)
    caplog.set_level(logging.WARNING, logger="guard_core.ip_ban")
    for target in ("127.0.0.1", "::1", "::ffff:127.0.0.5", "127.0.0.0/8", "0.0.0.0/0"):
        assert await bans.ban_ip(target, 60) is False
    assert await bans.is_ip_banned("127.0.0.1") is False
    assert await bans.list_bans() == []
    assert len([r for r in caplog.records if "loopback" in r.getMessage()]) == 5


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("not-an-ip", 60), ValueError),
        (("256.1.1.1", 60), ValueError),
        (("192.0.2.1/24", 60), ValueError),  # host bits set
        (("", 60), ValueError),
        ((None, 60), TypeError),
        (("192.0.2.1", 0), ValueError),
        (("192.0.2.1", -5), ValueError),
        (("192.0.2.1", 1.5), TypeError),
        (("192.0.2.1", True), TypeError),
    ],
)
async def test_invalid_ban_arguments(
    state_env: StateEnv, args: tuple[Any, ...], error: type[Exception]
) -> None:
    bans = IPBanManager(state_env.config, state_env.redis)
    with pytest.raises(error):
        await bans.ban_ip(*args)
    assert await bans.list_bans() == []


@pytest.mark.parametrize(
    ("ip", "error"),
    [
        ("", ValueError),
        ("10.0.0", ValueError),
        ("::g", ValueError),
        (3232235777, TypeError),
    ],
)
async def test_invalid_address_checks(state_env: StateEnv, ip: object, error: type) -> None:
    bans = IPBanManager(state_env.config, state_env.redis)
    with pytest.raises(error):
        await bans.is_ip_banned(ip)  # type: ignore[arg-type]
    with pytest.raises(error):
        await bans.unban_ip(ip)  # type: ignore[arg-type]


async def test_no_redis_manager_at_all() -> None:
    from guard_core.models import SecurityConfig

    bans = IPBanManager(SecurityConfig(enable_redis=False))
    assert await bans.ban_ip("198.51.100.9", 30) is True
    assert await bans.is_ip_banned("198.51.100.9") is True


async def test_two_instances_share_bans(shared_env: StateEnv) -> None:
    config = dataclasses.replace(shared_env.config, redis_state_refresh_interval=0.001)
    first = IPBanManager(config, shared_env.redis)
    second = IPBanManager(config, shared_env.redis)
    await first.ban_ip("203.0.113.50", 60)
    await first.ban_ip("198.51.100.0/24", 60)
    assert await second.is_ip_banned("203.0.113.50") is True
    assert await second.is_ip_banned("198.51.100.77") is True
    assert await second.unban_ip("203.0.113.50") is True
    assert await first.is_ip_banned("203.0.113.50") is False  # lifted elsewhere: Redis wins


async def test_redis_stopped_mid_run(
    private_server: LocalRedisServer, private_env: StateEnv
) -> None:
    config = dataclasses.replace(private_env.config, redis_state_refresh_interval=0.001)
    bans = IPBanManager(config, private_env.redis)
    other_redis = RedisManager(config)
    other = IPBanManager(config, other_redis)
    await bans.ban_ip("203.0.113.1", 600)
    private_server.stop()
    assert await bans.is_ip_banned("203.0.113.1") is True  # answered from memory
    assert await bans.ban_ip("203.0.113.2", 600, reason="during outage") is True
    assert await bans.is_ip_banned("203.0.113.2") is True
    assert {r.target for r in await bans.list_bans()} == {"203.0.113.1", "203.0.113.2"}
    assert await other.is_ip_banned("203.0.113.1") is False  # never reached Redis: memory only
    private_server.start()
    assert await bans.is_ip_banned("203.0.113.2") is True  # still enforced here
    assert await bans.is_ip_banned("203.0.113.1") is True  # and written again
    assert await other.is_ip_banned("203.0.113.2") is True  # the outage's ban, shared now
    assert await other.is_ip_banned("203.0.113.1") is True
    await bans.ban_ip("203.0.113.3", 600)
    assert await other.is_ip_banned("203.0.113.3") is True  # shared again by itself
    assert private_env.inspect is not None
    assert private_env.inspect.exists("guard_core:banned_ips:203.0.113.3") == 1
    await other_redis.close()


async def test_bans_hold_while_a_restart_is_being_replayed(
    private_server: LocalRedisServer, private_env: StateEnv
) -> None:
    config = dataclasses.replace(private_env.config, redis_state_refresh_interval=0.001)
    bans = IPBanManager(config, private_env.redis)
    targets = [f"198.51.{index // 250}.{index % 250 + 1}" for index in range(300)]
    for target in targets:
        await bans.ban_ip(target, 600)
    private_server.stop()
    private_server.start()  # empty
    answers: list[bool] = []

    async def check(index: int) -> None:
        for target in targets[index::ASYNC_WORKERS]:
            answers.append(await bans.is_ip_banned(target))

    await run_async_workers(ASYNC_WORKERS, check)
    assert len(answers) == len(targets)
    assert all(answers)
    # no flusher (a manager made on its own): each call wrote back a few, the rest follow
    await async_written_back(bans._store)
    assert private_env.inspect is not None
    assert private_env.inspect.exists(*(f"guard_core:banned_ips:{t}" for t in targets)) == 300


async def test_bans_lifted_elsewhere_stay_lifted_after_a_restart(
    private_server: LocalRedisServer, private_env: StateEnv
) -> None:
    config = dataclasses.replace(private_env.config, redis_state_refresh_interval=0.001)
    first = IPBanManager(config, private_env.redis)
    other_redis = RedisManager(config)
    second = IPBanManager(config, other_redis)
    await first.ban_ip("203.0.113.20", 600)
    await first.ban_ip("198.51.100.0/24", 600)
    assert await second.unban_ip("203.0.113.20") is True
    assert await second.unban_ip("198.51.100.0/24") is True
    await async_sleep(0.01)
    assert await first.is_ip_banned("192.0.2.1") is False  # first learns of the lifts here
    private_server.stop()
    private_server.start()  # empty: first writes again what it still holds
    assert await first.is_ip_banned("203.0.113.20") is False
    assert await first.is_ip_banned("198.51.100.5") is False
    assert await second.is_ip_banned("203.0.113.20") is False
    assert await first.list_bans() == []
    await other_redis.close()


async def test_a_refused_replay_is_retried(
    private_server: LocalRedisServer, private_env: StateEnv
) -> None:
    config = dataclasses.replace(private_env.config, redis_state_refresh_interval=0.001)
    bans = IPBanManager(config, private_env.redis)
    await bans.ban_ip("203.0.113.30", 600)
    private_server.stop()
    private_server.start()
    inspect = private_env.inspect
    assert inspect is not None
    inspect.config_set("maxmemory-policy", "noeviction")
    inspect.config_set("maxmemory", "1")  # the replay's writes are refused (OOM)
    assert await bans.is_ip_banned("203.0.113.30") is True
    assert await bans.is_ip_banned("203.0.113.30") is True
    assert bans.pending_writes == 1
    assert inspect.exists("guard_core:banned_ips:203.0.113.30") == 0
    inspect.config_set("maxmemory", "0")
    await async_sleep(0.01)
    assert await bans.is_ip_banned("203.0.113.30") is True
    assert bans.pending_writes == 0
    assert inspect.exists("guard_core:banned_ips:203.0.113.30") == 1
