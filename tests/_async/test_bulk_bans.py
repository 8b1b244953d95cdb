"""Bulk bans (`BanStorage.ban_many`, `IPBanManager.ban_many`) and who made each ban, on
fakeredis and on real Redis in each topology, written once for both faces."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from guard_core._shared.concurrency import async_sleep
from guard_core._shared.storage.lua_scripts import BAN_WRITE
from guard_core._shared.storage.memory_bans import decode_ban
from guard_core.guard import Guard
from guard_core.handlers.ipban_handler import IPBanManager
from guard_core.models import SecurityConfig
from guard_core.testing import LocalRedisServer
from tests.support.backends import StateEnv

pytestmark = pytest.mark.anyio

WAIT_LIMIT = 20.0  # seconds before a wait gives up (a failure, never a speed figure)


def addresses(count: int, second: int = 0) -> list[str]:
    return [f"10.{second}.{i >> 8}.{i & 255}" for i in range(count)]


def lift_behind(env: StateEnv, address: str) -> None:
    """A lift of `address` made now, by another writer (the ban_write script, as an
    instance's `unban_ip` runs it), from a plain client."""
    assert env.inspect is not None
    ban_key, lift_key = env.key("banned_ips", address), env.key("ban_lifts", address)
    env.inspect.eval(BAN_WRITE.source, 2, ban_key, lift_key, "lift", repr(time.time()), "", 60_000)


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_LIMIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        await async_sleep(0.01)


async def test_ban_many_writes_addresses_and_networks_with_their_indexes(
    shared_env: StateEnv,
) -> None:
    env = shared_env
    bans = IPBanManager(env.config, env.redis)
    entries: list[tuple[str, int | None, str]] = [(a, 600, "listed") for a in addresses(2300)]
    entries += [("2001:db8::7", None, "v6"), ("198.51.100.0/24", 900, "net")]
    entries += [("2001:db8:1::/48", 300, "net6"), ("::ffff:192.0.2.9", 60, "mapped")]
    done = await bans.ban_many(entries, by="importer", batch_size=1000)
    assert (done.taken, done.superseded, done.unwritten) == (len(entries), 0, 0)
    assert done.batches == 3
    assert env.inspect is not None
    key = env.key
    assert env.inspect.zcard(key("ban_index", "addresses")) == 2302
    stored = json.loads(env.inspect.get(key("banned_ips", "10.0.1.7")) or "{}")
    assert (stored["reason"], stored["by"]) == ("listed", "importer")
    assert stored["expires_at"] - stored["banned_at"] == pytest.approx(600)
    assert 590 < env.inspect.ttl(key("banned_ips", "10.0.1.7")) <= 600
    mapped = json.loads(env.inspect.get(key("banned_ips", "192.0.2.9")) or "{}")
    assert mapped["reason"] == "mapped"
    default = json.loads(env.inspect.get(key("banned_ips", "2001:db8::7")) or "{}")
    assert default["expires_at"] - default["banned_at"] == pytest.approx(
        env.config.ip_ban_default_duration
    )
    index = env.inspect.hgetall(key("banned_networks", "index"))
    assert json.loads(index["198.51.100.0/24"])["by"] == "importer"
    assert "2001:db8:1::/48" in index
    # another instance sees them all, networks included
    other = IPBanManager(env.config, env.redis)
    for address in ("10.0.8.251", "198.51.100.77", "2001:db8:1::5", "192.0.2.9"):
        assert await other.is_ip_banned(address) is True, address
    assert await other.is_ip_banned("10.0.9.0") is False
    listed = {record.target: record for record in await other.list_bans()}
    assert len(listed) == len(entries)
    assert listed["198.51.100.0/24"].by == "importer"
    assert listed["10.0.0.1"].reason == "listed"


async def test_ban_many_checks_every_entry_before_writing_any(state_env: StateEnv) -> None:
    bans = IPBanManager(state_env.config, state_env.redis)
    good: list[tuple[str, int | None, str]] = [("203.0.113.1", 60, "a")]
    for bad, error in (
        (("not-an-ip", 60, "x"), ValueError),
        (("192.0.2.1/24", 60, "x"), ValueError),
        (("127.0.0.1", 60, "x"), ValueError),
        (("::/0", 60, "x"), ValueError),
        (("203.0.113.2", 0, "x"), ValueError),
        (("203.0.113.2", 60, 5), TypeError),
    ):
        with pytest.raises(error):
            await bans.ban_many([*good, bad])  # type: ignore[list-item]
    assert await bans.list_bans() == []


async def test_ban_many_without_redis_writes_nothing_and_says_so() -> None:
    config = SecurityConfig(enable_redis=False)
    bans = IPBanManager(config)
    done = await bans.ban_many([("203.0.113.1", 60, "a"), ("198.51.100.0/24", 60, "b")])
    assert (done.taken, done.unwritten, done.batches) == (0, 2, 0)


async def test_a_lift_made_after_the_bulk_write_began_wins(shared_env: StateEnv) -> None:
    env = shared_env
    bans = IPBanManager(env.config, env.redis)
    listed = addresses(60)
    first, later, twice = listed[3], listed[45], listed[50]
    # lifted before the write began: the write is the later change, and bans it
    early = listed[7]
    lift_behind(env, early)
    await async_sleep(0.01)
    seen: list[int] = []

    def lift_meanwhile(done: int) -> None:
        if not seen:  # after the first round of batches: `first` is written, `later` not
            lift_behind(env, first)
            lift_behind(env, later)
            lift_behind(env, twice)
        seen.append(done)

    entries: list[tuple[str, int | None, str]] = [(a, 600, "listed") for a in listed]
    entries.append((twice, 900, "again"))  # a later entry of a target lifted meanwhile
    done = await bans.ban_many(entries, batch_size=10, progress=lift_meanwhile)
    assert seen[0] < len(entries) and seen[-1] == len(entries)
    assert env.inspect is not None
    for address in (first, later, twice):
        assert env.inspect.get(env.key("banned_ips", address)) is None, address
        assert await bans.is_ip_banned(address) is False, address
    assert await bans.is_ip_banned(early) is True
    assert await bans.is_ip_banned(listed[0]) is True
    # `later` and `twice` were kept out by the lift; the first entry of `twice` by its last
    assert done.superseded == 3
    assert done.taken == len(listed) - 2


async def test_a_ban_made_after_the_bulk_write_began_stands(shared_env: StateEnv) -> None:
    env = shared_env
    bans = IPBanManager(env.config, env.redis)
    listed = addresses(30)
    made: list[int] = []

    def ban_meanwhile(done: int) -> None:
        if not made:
            assert env.inspect is not None
            now = time.time()
            record = json.dumps(
                {"expires_at": now + 50, "banned_at": now, "reason": "later", "by": "x"}
            )
            env.inspect.set(env.key("banned_ips", listed[25]), record, ex=50)
        made.append(done)

    await bans.ban_many([(a, 600, "bulk") for a in listed], batch_size=10, progress=ban_meanwhile)
    assert env.inspect is not None
    stored = json.loads(env.inspect.get(env.key("banned_ips", listed[25])) or "{}")
    assert stored["reason"] == "later"


async def test_one_invalidation_message_per_batch(redis_server: LocalRedisServer) -> None:
    config = SecurityConfig(redis_url=redis_server.url, redis_prefix="bulkmsg:")
    listener = redis.Redis.from_url(redis_server.url, decode_responses=True)
    untyped: Any = listener  # redis-py's pubsub() is untyped
    pubsub = untyped.pubsub()
    pubsub.subscribe("bulkmsg:invalidations:changes")
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    async with Guard(config, serving=False) as guard:
        entries: list[tuple[str, int | None, str]] = [(a, 60, "m") for a in addresses(2500)]
        entries.append(("198.51.100.0/24", 60, "m"))
        done = await guard.ip_bans.ban_many(entries, batch_size=1000)
        assert done.batches == 3
        await guard.redis.delete_pattern("*")
    messages: list[str] = []
    while (message := pubsub.get_message(timeout=1)) is not None:
        messages.append(message["data"])
    pubsub.close()
    listener.close()
    assert len(messages) == 3
    targets = [target for text in messages for target in text.split(" ")[3:]]
    assert all(text.split(" ")[1:3] == ["ban", "*"] for text in messages)
    assert sorted(targets) == sorted(target for target, _, _ in entries)


async def test_a_follower_applies_bulk_bans_without_reloading_its_mirror(
    redis_server: LocalRedisServer,
) -> None:
    config = SecurityConfig(
        redis_url=redis_server.url, redis_prefix="bulkfollow:", redis_state_refresh_interval=3600
    )
    async with Guard(config) as follower, Guard(config, serving=False) as writer:
        await wait_until(lambda: follower.store.mirror.addresses.loaded, "the mirror's load")
        mirror = follower.store.mirror
        loads = mirror.loads
        assert await follower.ip_bans.is_ip_banned("10.3.0.1") is False  # held "not banned"
        listed = addresses(3000, second=3)
        entries: list[tuple[str, int | None, str]] = [(a, 600, "bulk") for a in listed]
        entries.append(("198.51.100.0/24", 600, "bulk"))
        await writer.ip_bans.ban_many(entries)
        await wait_until(
            lambda: all(mirror.addresses.banned_until(a) is not None for a in listed),
            "every imported ban in the follower's mirror",
        )
        await wait_until(lambda: len(follower.store.bans.networks.index) == 1, "the network")
        assert mirror.loads == loads  # followed batch by batch, never reloaded whole
        assert mirror.batches >= 3
        health = await follower.health()
        assert health.mirror["address_bans"] == len(listed)
        assert health.mirror["loads"] == loads
        assert await follower.ip_bans.is_ip_banned("10.3.0.1") is True
        assert await follower.ip_bans.is_ip_banned("198.51.100.9") is True
        await writer.redis.delete_pattern("*")


async def test_bans_say_who_made_them(state_env: StateEnv) -> None:
    bans = IPBanManager(state_env.config, state_env.redis)
    await bans.ban_ip("203.0.113.5", 60, reason="r")
    await bans.ban_ip("198.51.100.0/24", 60, reason="n", by="cli")
    listed = {record.target: record for record in await bans.list_bans()}
    assert listed["203.0.113.5"].by == bans._store.instance_id
    assert len(listed["203.0.113.5"].by) == 32  # the instance's id, as in members:instances
    assert listed["198.51.100.0/24"].by == "cli"
    with pytest.raises(TypeError):
        await bans.ban_ip("203.0.113.6", 60, by=5)  # type: ignore[arg-type]


def test_records_of_older_layouts_still_decode() -> None:
    now = time.time()
    old = decode_ban("203.0.113.5", json.dumps({"expires_at": now + 60, "banned_at": now}), now)
    assert old is not None and old.by == "" and old.reason == ""
    oldest = decode_ban("203.0.113.5", json.dumps(now + 60), now)
    assert oldest is not None and oldest.by == "" and oldest.banned_at == 0.0
    odd = decode_ban("203.0.113.5", json.dumps({"expires_at": now + 60, "by": 7}), now)
    assert odd is not None and odd.by == ""


async def test_redis_gone_in_the_middle_of_a_bulk_write_leaves_the_rest_unwritten(
    private_server: LocalRedisServer,
) -> None:
    config = SecurityConfig(
        redis_url=private_server.url,
        redis_connect_timeout=0.3,
        redis_socket_timeout=0.3,
    )
    listed = addresses(60)
    rounds: list[int] = []

    def kill_after_the_first_round(done: int) -> None:
        if not rounds:
            private_server.stop()  # gone before the next round of batches
        rounds.append(done)

    async with Guard(config) as guard:
        entries: list[tuple[str, int | None, str]] = [(a, 600, "listed") for a in listed]
        done = await guard.ip_bans.ban_many(
            entries, batch_size=10, progress=kill_after_the_first_round
        )
        assert rounds == [20]  # two batches in flight per round: the first round was taken
        assert (done.taken, done.unwritten) == (20, 40)
        assert done.taken + done.superseded + done.unwritten == len(listed)
        # the bans taken before the outage are enforced during it, from the mirror
        assert await guard.ip_bans.is_ip_banned(listed[0]) is True
        assert await guard.ip_bans.is_ip_banned(listed[59]) is False
