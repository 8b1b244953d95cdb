"""No ban check scans the keyspace: two `Guard`s on a real redis-server holding keys that are
not the library's, and the server's own command counts (`INFO commandstats`, reset first).

Whatever happens meanwhile (bans and lifts of addresses and networks on the other instance,
the invalidation subscription killed, a guard started afresh), `is_ip_banned` issues no
SCAN-like command, and reads the network-ban index (HSCAN) only when it changed or may have
changed unseen: a bounded number of times, however many calls are made. The time this takes
with a million keys is measured by `benchmarks/bench_keyspace.py`, not here.
"""

from __future__ import annotations

import time

import pytest
import redis

from guard_core._shared.concurrency import async_sleep
from guard_core.guard import Guard
from guard_core.models import SecurityConfig
from guard_core.testing import LocalRedisServer
from tests._async.test_invalidation import WAIT_LIMIT, subscribed

pytestmark = pytest.mark.anyio

UNRELATED_KEYS = 5000
ROUNDS = 6
BANNED = ["203.0.113.1", "203.0.113.2"]
NETWORKS = ["100.64.0.0/16", "100.65.0.0/16"]
IN_NETWORKS = ["100.64.7.9", "100.65.7.9"]
CHANGED = "192.0.2.7"
CHANGED_NETWORK = "198.51.100.0/24"
IN_CHANGED_NETWORK = "198.51.100.200"
NEVER = ["233.252.0.1", "233.252.0.2"]
CHECKED = [*BANNED, *IN_NETWORKS, CHANGED, IN_CHANGED_NETWORK, *NEVER]
#: Commands that walk the keyspace or a whole collection.
SCANNING = ("scan", "keys", "sscan", "randomkey", "hgetall", "smembers")


def config_for(server: LocalRedisServer) -> SecurityConfig:
    # an hour between periodic re-reads: only changes (pushed) make an instance read again
    return SecurityConfig(
        redis_url=server.url,
        redis_state_refresh_interval=3600,
        redis_breaker_base_delay=0,
        redis_breaker_max_delay=0,
    )


def command_calls(inspect: redis.Redis) -> dict[str, int]:
    stats: dict[str, dict[str, int]] = inspect.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(s["calls"]) for name, s in stats.items()}


class Checker:
    """Counts the `is_ip_banned` calls made through it."""

    def __init__(self) -> None:
        self.calls = 0

    async def banned(self, guard: Guard, address: str) -> bool:
        self.calls += 1
        return await guard.ip_bans.is_ip_banned(address)

    async def eventually(self, guard: Guard, address: str, expected: bool) -> None:
        deadline = time.monotonic() + WAIT_LIMIT
        while await self.banned(guard, address) is not expected:
            if time.monotonic() > deadline:
                raise AssertionError(f"{address} never became banned={expected}")
            await async_sleep(0.005)

    async def sweep(self, guard: Guard, expected: dict[str, bool], times: int = 3) -> None:
        for _ in range(times):
            for address in CHECKED:
                assert await self.banned(guard, address) is expected[address], address


async def test_ban_checks_scan_nothing_and_read_the_network_index_only_on_change(
    private_server: LocalRedisServer,
) -> None:
    inspect = redis.Redis.from_url(private_server.url, decode_responses=True)
    with inspect.pipeline(transaction=False) as pipe:
        for n in range(UNRELATED_KEYS):
            pipe.set(f"unrelated:{n}", "x")
        pipe.execute()
    config = config_for(private_server)
    expected = dict.fromkeys(CHECKED, False)
    expected.update({address: True for address in [*BANNED, *IN_NETWORKS]})
    check = Checker()
    async with Guard(config) as changer, Guard(config) as checker:
        await subscribed(changer)
        await subscribed(checker)
        for target in [*BANNED, *NETWORKS]:
            assert await changer.ip_bans.ban_ip(target, 600)
        for address in CHECKED:
            await check.eventually(checker, address, expected[address])
        inspect.config_resetstat()

        network_changes = 0
        for round_ in range(ROUNDS):  # the other instance bans, then lifts
            banning = round_ % 2 == 0
            if banning:
                assert await changer.ip_bans.ban_ip(CHANGED, 600)
                assert await changer.ip_bans.ban_ip(CHANGED_NETWORK, 600)
            else:
                assert await changer.ip_bans.unban_ip(CHANGED)
                assert await changer.ip_bans.unban_ip(CHANGED_NETWORK)
            network_changes += 1
            expected[CHANGED] = expected[IN_CHANGED_NETWORK] = banning
            await check.eventually(checker, CHANGED, banning)
            await check.eventually(checker, IN_CHANGED_NETWORK, banning)
            await check.sweep(checker, expected)

        # the subscription killed: nothing held is trusted until it is back
        before = checker.store.invalidations.subscriptions
        changer_before = changer.store.invalidations.subscriptions
        assert inspect.client_kill_filter(_type="pubsub") >= 2
        await subscribed(checker, after=before)
        await subscribed(changer, after=changer_before)  # its catch-up may read the index
        await check.sweep(checker, expected)

        # a guard started afresh: nothing held, nothing read yet
        async with Guard(config) as fresh:
            await check.sweep(fresh, expected)

        during = command_calls(inspect)
        # settled: more calls read nothing at all (the verdicts are held)
        await check.sweep(checker, expected, times=10)
        after = command_calls(inspect)

    inspect.close()
    for name in SCANNING:
        assert during.get(name, 0) == 0, f"{name} was sent {during.get(name, 0)} times"
    # each instance reads the index (its version, HGET; then the index itself, a few fields
    # in one HSCAN step, when the version changed) once per change or lost subscription,
    # not once per call
    reads = network_changes + 1 + 1  # changes, the killed subscription, the new guard
    assert 1 <= during.get("hscan", 0) <= 2 * reads
    # the ban index is walked (ZSCAN steps) only to load a mirror: by the guard started
    # afresh, and at most once by each guard whose subscription was killed (when the index's
    # version moved meanwhile); never for a change followed while subscribed, nor by a check
    assert 1 <= during.get("zscan", 0) <= 3
    # (the version: by the follower, then by the first check after it, and by a check that
    # ran while the follower read, which reads for itself rather than answer from the old)
    assert during.get("hget", 0) <= 4 * reads
    assert check.calls >= 10 * 2 * reads  # far more calls than reads of the index
    for name in ("hscan", "zscan", "hget", "get", "mget"):
        assert after.get(name, 0) == during.get(name, 0), f"settled checks sent {name}"
