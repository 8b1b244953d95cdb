"""The local mirror of shared state: what an instance knows during an outage (both faces).

Two `Guard`s on one real redis-server are two app instances; the `guard-core` command, run
as a process of its own, is a third writer. Bans, a network ban, a custom pattern and a
header configuration made elsewhere before an outage must hold on an instance that never
looked at them, for the whole outage, whether Redis was killed or hangs.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from guard_core._shared.concurrency import async_sleep
from guard_core.guard import Guard
from guard_core.models import SecurityConfig
from guard_core.testing import LocalRedisServer
from tests.support.faults import end_outage, start_outage
from tests.support.waits import async_written_back

pytestmark = pytest.mark.anyio

SCRIPT = Path(sys.executable).parent / "guard-core"
CLI_ADDRESS = "192.0.2.10"
ADDRESS = "203.0.113.7"
NETWORK = "198.51.100.0/24"
IN_NETWORK = "198.51.100.5"
PATTERN = r"mirror-marker-\d+"
HEADER = "X-Mirror-Test"


def mirror_config(server: LocalRedisServer) -> SecurityConfig:
    return SecurityConfig(
        redis_url=server.url,
        redis_connect_timeout=0.3,
        redis_socket_timeout=0.3,
        redis_breaker_base_delay=0,
        redis_breaker_max_delay=0,
        redis_state_refresh_interval=3600,  # nothing is re-read lazily: the mirror must hold
        redis_journal_flush_interval=3600,
    )


def cli_ban(server: LocalRedisServer, target: str) -> None:
    env = {**os.environ, "GUARD_CORE_REDIS_URL": server.url}
    result = subprocess.run(
        [str(SCRIPT), "bans", "add", target, "--duration", "600"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


async def eventually(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not after {timeout} s: {what}")
        await async_sleep(0.02)


@pytest.mark.parametrize("fault", ["killed", "hung"])
@pytest.mark.parametrize("order", ["cli-first", "guards-first"])
async def test_state_made_elsewhere_holds_during_an_outage(
    private_server: LocalRedisServer, fault: str, order: str
) -> None:
    config = mirror_config(private_server)
    if order == "cli-first":
        cli_ban(private_server, CLI_ADDRESS)  # made before either instance started
    async with Guard(config) as maker, Guard(config) as idle:
        if order == "guards-first":
            await eventually(lambda: idle.store.invalidations.subscribed, "idle subscribed")
            cli_ban(private_server, CLI_ADDRESS)
        await maker.ip_bans.ban_ip(ADDRESS, 600)
        await maker.ip_bans.ban_ip(NETWORK, 600)
        await maker.patterns.add_pattern(PATTERN)
        await maker.headers.configure(custom_headers={HEADER: "on"})
        # the idle instance is told and follows in the background; it answers nothing yet
        store = idle.store
        await eventually(
            lambda: (
                store.mirror.addresses.banned_until(ADDRESS) is not None
                and store.mirror.addresses.banned_until(CLI_ADDRESS) is not None
                and store.mirror.report()["network_bans"] == 1
                and PATTERN in idle.patterns._cache.patterns()
                and HEADER in dict(idle.headers.current.custom_headers)
            ),
            "the idle instance mirrors what was made elsewhere",
        )
        start_outage(private_server, fault)
        try:
            for _ in range(2):  # the first calls open the breaker; the later ones fail fast
                assert await idle.ip_bans.is_ip_banned(CLI_ADDRESS) is True
                assert await idle.ip_bans.is_ip_banned(ADDRESS) is True
                assert await idle.ip_bans.is_ip_banned(IN_NETWORK) is True
                assert await idle.ip_bans.is_ip_banned("192.0.2.99") is False
                assert [m.pattern for m in await idle.patterns.detect("mirror-marker-7")] == [
                    PATTERN
                ]
                assert (await idle.headers.get_headers("/"))[HEADER] == "on"
                # and the instance that made them, through the same mirror for the CLI's ban
                assert await maker.ip_bans.is_ip_banned(CLI_ADDRESS) is True
            health = await idle.health()
            assert health.status == "degraded"
            assert health.mirror["ready"] is True
            assert health.mirror["address_bans"] == 2
            assert health.mirror["network_bans"] == 1
            # a lift made here during the outage holds here at once; the maker keeps its ban
            assert await idle.ip_bans.unban_ip(ADDRESS) is False  # not held here in memory
            assert await idle.ip_bans.is_ip_banned(ADDRESS) is False
            assert await maker.ip_bans.is_ip_banned(ADDRESS) is True
        finally:
            end_outage(private_server, fault)
        if fault == "hung":
            # Redis kept its data: the lift made during the outage settles on both
            for guard in (idle, maker):
                await answered(guard)
            await idle.ip_bans.list_bans()  # wakes the flusher, which writes the lift back
            await async_written_back(idle.store)
            assert await maker.ip_bans.is_ip_banned(ADDRESS) is False
            assert await idle.ip_bans.is_ip_banned(ADDRESS) is False
            assert await idle.ip_bans.is_ip_banned(CLI_ADDRESS) is True


async def answered(guard: Guard, timeout: float = 10.0) -> None:
    """Until `guard` finds Redis back (a hung server's first answers may time out)."""
    deadline = time.monotonic() + timeout
    while not await guard.redis.ping():
        if time.monotonic() > deadline:
            raise AssertionError("Redis did not answer again")
        await async_sleep(0.05)


async def test_a_ban_that_ends_during_the_outage_ends_in_the_mirror(
    private_server: LocalRedisServer,
) -> None:
    config = mirror_config(private_server)
    async with Guard(config) as maker, Guard(config) as idle:
        await eventually(lambda: idle.store.invalidations.subscribed, "idle subscribed")
        await maker.ip_bans.ban_ip(ADDRESS, 1)
        await eventually(
            lambda: idle.store.mirror.addresses.banned_until(ADDRESS) is not None,
            "the ban mirrored",
        )
        private_server.stop()
        assert await idle.ip_bans.is_ip_banned(ADDRESS) is True
        await async_sleep(1.1)
        assert await idle.ip_bans.is_ip_banned(ADDRESS) is False


async def test_an_instance_started_during_an_outage_says_it_knows_only_its_own(
    private_server: LocalRedisServer,
) -> None:
    config = mirror_config(private_server)
    cli_ban(private_server, CLI_ADDRESS)
    private_server.stop()
    async with Guard(config) as late:
        health = await late.health()
        assert health.status == "degraded"
        assert health.mirror["ready"] is False
        assert health.mirror["age"] is None
        assert await late.ip_bans.is_ip_banned(CLI_ADDRESS) is False  # never seen
        await late.ip_bans.ban_ip(ADDRESS, 600)
        assert await late.ip_bans.is_ip_banned(ADDRESS) is True  # its own
        private_server.start()  # empty (no persistence): the CLI bans again
        cli_ban(private_server, CLI_ADDRESS)
        await late.redis.ping()
        await eventually(
            lambda: (
                late.store.mirror.addresses.loaded
                and late.store.mirror.addresses.banned_until(CLI_ADDRESS) is not None
            ),
            "the mirror loaded once Redis is back",
        )
        assert (await late.health()).mirror["ready"] is True


async def test_a_missed_change_is_caught_up_when_the_subscription_is_back(
    private_server: LocalRedisServer,
) -> None:
    config = mirror_config(private_server)
    async with Guard(config) as maker, Guard(config) as idle:
        await eventually(lambda: idle.store.invalidations.subscribed, "idle subscribed")
        seen = idle.store.invalidations.subscriptions
        await idle.store.invalidations.stop()  # the idle instance hears nothing meanwhile
        await maker.ip_bans.ban_ip(ADDRESS, 600)
        assert idle.store.mirror.addresses.banned_until(ADDRESS) is None
        idle.store.invalidations.start()
        await eventually(lambda: idle.store.invalidations.subscriptions > seen, "subscribed again")
        await eventually(
            lambda: idle.store.mirror.addresses.banned_until(ADDRESS) is not None,
            "the version check found the missed ban",
        )


async def test_the_mirror_is_bounded_and_drops_the_bans_that_end_first(
    private_server: LocalRedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    base = mirror_config(private_server)
    config = dataclasses.replace(base, ip_ban_mirror_max_entries=100)
    async with Guard(config) as maker:
        for index in range(120):
            await maker.ip_bans.ban_ip(f"192.0.2.{index + 1}", 600 + index)
    warnings = [r for r in caplog.records if "Ban mirror full" in r.getMessage()]
    assert len(warnings) == 1
    async with Guard(config) as reader:
        health = await reader.health()
        assert health.mirror["address_bans"] <= 100
        assert health.mirror["evictions"] >= 20
        # the longest bans stay
        assert reader.store.mirror.addresses.banned_until("192.0.2.120") is not None
        assert reader.store.mirror.addresses.banned_until("192.0.2.1") is None


async def test_closing_while_the_mirror_catches_up_ends_cleanly(
    private_server: LocalRedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A guard closed while its subscription's task reads a large index: close returns,
    nothing is logged as failed, and a guard started again loads the whole index."""
    inspect = redis.Redis.from_url(private_server.url, decode_responses=True)
    end = time.time() + 600
    count = 30_000
    for first in range(0, count, 10_000):
        inspect.zadd(
            "guard_core:ban_index:addresses",
            {f"10.0.{i >> 8 & 255}.{i & 255}": end for i in range(first, first + 10_000)},
        )
    config = mirror_config(private_server)
    guard = Guard(config)
    await guard.start()
    await eventually(lambda: guard.store.invalidations.subscribed, "subscribed")
    inspect.incr("guard_core:ban_index:version")  # the index moved: a catch-up reloads it
    seen = guard.store.invalidations.subscriptions
    inspect.client_kill_filter(_type="pubsub")
    await eventually(lambda: guard.store.invalidations.subscriptions > seen, "subscribed again")
    await guard.close()  # the reload may be under way in the subscription's task
    assert not [r for r in caplog.records if "Following a change failed" in r.getMessage()]
    async with Guard(config) as again:
        assert len(again.store.mirror.addresses) == count
    inspect.close()
