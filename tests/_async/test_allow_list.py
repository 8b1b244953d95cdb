"""The shared allow list (`Guard.allow_list`, `guard-core allow`): both faces.

Two `Guard`s on one real redis-server are two app instances, in both orders; one of them
never calls the allow list (idle) and must still know every entry. The `guard-core`
command, run as a process of its own, is a third writer, before the instances start and
right before an outage. Entries hold for the whole outage from the copy each instance keeps;
changes made during one are written back; a removal made elsewhere is not brought back by a
Redis restart.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from guard_core._shared.addresses import parse_ip
from guard_core._shared.concurrency import async_sleep
from guard_core._shared.policy.check_settings import CheckSettings
from guard_core._shared.policy.request_model import RequestInfo
from guard_core.guard import Guard
from guard_core.models import SecurityConfig
from guard_core.request_check import RequestCheck
from guard_core.testing import LocalRedisServer
from tests.support.faults import end_outage, start_outage
from tests.support.waits import async_written_back

pytestmark = pytest.mark.anyio

SCRIPT = Path(sys.executable).parent / "guard-core"
NETWORK = "198.51.100.0/24"
IN_NETWORK = "198.51.100.5"
ADDRESS = "203.0.113.7"
OUTSIDE = "192.0.2.99"


def allow_config(server: LocalRedisServer, *, flush: float = 3600) -> SecurityConfig:
    return SecurityConfig(
        redis_url=server.url,
        redis_connect_timeout=0.3,
        redis_socket_timeout=0.3,
        redis_breaker_base_delay=0,
        redis_breaker_max_delay=0,
        redis_state_refresh_interval=3600,  # nothing re-read lazily: pushes and the copy only
        redis_journal_flush_interval=flush,
    )


def cli(server: LocalRedisServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GUARD_CORE_REDIS_URL": server.url}
    return subprocess.run([str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60)


async def eventually(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not after {timeout} s: {what}")
        await async_sleep(0.02)


def get(peer: str) -> RequestInfo:
    return RequestInfo(peer=peer, method="GET", path="/login", query="", headers={}, route="/")


@pytest.mark.parametrize("writer", [0, 1])
async def test_entries_reach_the_other_instance_in_both_orders(
    private_server: LocalRedisServer, writer: int
) -> None:
    config = allow_config(private_server)
    async with Guard(config) as first, Guard(config) as second:
        maker, idle = (first, second) if writer == 0 else (second, first)
        await eventually(lambda: idle.store.invalidations.subscribed, "idle subscribed")
        assert await maker.allow_list.allow(NETWORK, reason="office") == NETWORK
        assert maker.allow_list.is_allowed(IN_NETWORK)  # here at once
        await eventually(lambda: idle.allow_list.is_allowed(IN_NETWORK), "the idle one follows")
        assert not idle.allow_list.is_allowed(OUTSIDE)
        [entry] = await idle.allow_list.list_entries()
        made_by = maker.store.instance_id
        assert (entry.target, entry.reason, entry.by) == (NETWORK, "office", made_by)
        # the idle one removes it; the maker follows
        assert await idle.allow_list.remove(NETWORK) is True
        assert not idle.allow_list.is_allowed(IN_NETWORK)
        await eventually(lambda: not maker.allow_list.is_allowed(IN_NETWORK), "the maker follows")
        assert await maker.allow_list.list_entries() == []
        assert await maker.allow_list.remove(NETWORK) is False
        assert (await maker.health()).mirror["allow_list"] == 0


@pytest.mark.parametrize("fault", ["killed", "hung"])
async def test_a_cli_entry_holds_through_an_outage_right_after_start(
    private_server: LocalRedisServer, fault: str
) -> None:
    made = cli(private_server, "allow", "add", ADDRESS, "--reason", "partner")
    assert made.returncode == 0, made.stderr
    banned = cli(private_server, "bans", "add", ADDRESS, "--duration", "600")
    assert banned.returncode == 0, banned.stderr
    config = allow_config(private_server)
    async with Guard(config) as guard:
        start_outage(private_server, fault)  # start() returned: the copy was read before
        try:
            check = RequestCheck(guard, CheckSettings(default_limits="1/minute"))
            for _ in range(3):  # banned and past its limit, but on the allow list
                decision = await check.check(get(ADDRESS))
                assert (decision.allowed, decision.verdict) == (True, "exempt")
            assert guard.allow_list.is_allowed(parse_ip(ADDRESS))
            # anyone else is still checked: the ban mirror and the outage limits answer
            assert (await check.check(get(OUTSIDE))).verdict == "allowed"
            health = await guard.health()
            assert (health.status, health.mirror["allow_list"]) == ("degraded", 1)
        finally:
            end_outage(private_server, fault)


async def test_an_entry_made_during_an_outage_is_written_back(
    private_server: LocalRedisServer,
) -> None:
    config = allow_config(private_server, flush=0.05)
    async with Guard(config) as maker, Guard(config) as idle:
        await eventually(lambda: idle.store.invalidations.subscribed, "idle subscribed")
        start_outage(private_server, "killed")
        try:
            await maker.allow_list.allow(ADDRESS, 600)
            assert maker.allow_list.is_allowed(ADDRESS)  # held here while Redis cannot
            assert maker.allow_list.pending_writes == 1
            assert not idle.allow_list.is_allowed(ADDRESS)
        finally:
            end_outage(private_server, "killed")  # back empty
        await async_written_back(maker.store)
        assert maker.allow_list.pending_writes == 0
        await eventually(lambda: idle.allow_list.is_allowed(ADDRESS), "the other one learns it")
        [entry] = await idle.allow_list.list_entries()
        assert entry.target == ADDRESS and entry.expires_at - time.time() > 500


async def test_a_removal_elsewhere_is_not_brought_back_by_a_restart(
    private_server: LocalRedisServer,
) -> None:
    config = allow_config(private_server, flush=0.05)
    async with Guard(config) as maker, Guard(config) as other:
        await eventually(lambda: other.store.invalidations.subscribed, "subscribed")
        await maker.allow_list.allow(NETWORK)
        await eventually(lambda: other.allow_list.is_allowed(IN_NETWORK), "the other follows")
        assert await other.allow_list.remove(NETWORK) is True
        await eventually(lambda: not maker.allow_list.is_allowed(IN_NETWORK), "maker follows")
        # Redis restarts empty: each instance writes again what it made and still holds
        start_outage(private_server, "killed")
        end_outage(private_server, "killed")
        await maker.redis.ping()  # a probe finds the restarted server
        await eventually(lambda: maker.redis.restarts >= 1, "the restart noticed", 15)
        await async_written_back(maker.store)
        await async_written_back(other.store)
        assert await maker.allow_list.list_entries() == []
        assert not maker.allow_list.is_allowed(IN_NETWORK)


async def test_an_entry_with_a_duration_ends() -> None:
    async with Guard(SecurityConfig(enable_redis=False)) as guard:
        await guard.allow_list.allow(ADDRESS, 1)
        await guard.allow_list.allow(NETWORK)  # no end
        assert guard.allow_list.is_allowed(ADDRESS) and guard.allow_list.is_allowed(IN_NETWORK)
        await async_sleep(1.1)
        assert not guard.allow_list.is_allowed(ADDRESS)
        assert [e.target for e in await guard.allow_list.list_entries()] == [NETWORK]


@pytest.mark.parametrize(
    ("call", "error", "named"),
    [
        (lambda g: g.allow_list.allow("not-an-ip"), ValueError, "not-an-ip"),
        (lambda g: g.allow_list.allow("10.0.0.1/8"), ValueError, "host bits"),
        (lambda g: g.allow_list.allow(ADDRESS, 0), ValueError, "duration"),
        (lambda g: g.allow_list.allow(ADDRESS, "60"), TypeError, "duration"),
        (lambda g: g.allow_list.allow(ADDRESS, reason=5), TypeError, "reason"),
        (lambda g: g.allow_list.remove("300.1.1.1"), ValueError, "300.1.1.1"),
    ],
)
async def test_bad_input_is_refused_and_changes_nothing(
    call: Callable[[Any], Any], error: type[Exception], named: str
) -> None:
    async with Guard(SecurityConfig(enable_redis=False)) as guard:
        await guard.allow_list.allow(NETWORK)
        with pytest.raises(error, match=named):
            await call(guard)
        assert [e.target for e in await guard.allow_list.list_entries()] == [NETWORK]
    with pytest.raises(ValueError, match="bogus"):
        guard.allow_list.is_allowed("bogus")


async def test_a_refused_forwarding_chain_is_not_let_through(make_check: Any) -> None:
    """An entry for the trusted proxy does not make a padded chain's client exempt."""
    check = await make_check(trusted_proxies=["10.0.0.0/8"])
    await check.guard.allow_list.allow("10.0.0.0/8")
    chain = ", ".join(["192.0.2.1"] * 100)  # past the bound of 64 entries
    decision = await check.check(
        RequestInfo(
            peer="10.0.0.2", method="GET", path="/", query="", headers={"x-forwarded-for": chain},
            route="/",
        )
    )  # fmt: skip
    assert (decision.allowed, decision.status) == (False, 403)
    # the proxy's own requests are exempt
    assert (await check.check(get("10.0.0.2"))).verdict == "exempt"
