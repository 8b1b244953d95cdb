"""Guard lifecycle across event loops and processes (hand-written: loops and forks differ
between the faces)."""

from __future__ import annotations

import asyncio
import logging
import os

import pytest

import guard_core
import guard_core_sync
from guard_core.models import SecurityConfig
from guard_core.testing import LocalRedisServer

# Forking a process with threads running is what these tests check (a guard made before a
# pre-fork server's fork); Python 3.12+ warns on every such fork.
FORKS_WITH_THREADS = pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded, use of fork:DeprecationWarning"
)


def test_async_guard_reused_on_new_event_loops(
    redis_server: LocalRedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    guard = guard_core.Guard(SecurityConfig(redis_url=redis_server.url, redis_prefix="loops:"))
    statuses: list[str] = []

    async def use() -> None:
        await guard.start()
        statuses.append((await guard.health()).status)
        await guard.rate_limiter.check("203.0.113.1", limit=10, window=60)

    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            asyncio.run(use())
    asyncio.run(guard.close())
    assert statuses == ["redis", "redis", "redis"]
    assert not [r for r in caplog.records if r.name.startswith("guard_core")]


def test_async_guard_starts_again_after_close(redis_server: LocalRedisServer) -> None:
    async def run() -> list[str]:
        guard = guard_core.Guard(SecurityConfig(redis_url=redis_server.url))
        found = []
        for _ in range(2):
            async with guard:
                found.append((await guard.health()).status)
        return found

    assert asyncio.run(run()) == ["redis", "redis"]


@FORKS_WITH_THREADS
def test_sync_guard_used_in_a_forked_child(redis_server: LocalRedisServer) -> None:
    config = SecurityConfig(redis_url=redis_server.url, redis_prefix="fork:")
    with guard_core_sync.Guard(config) as guard:
        guard.ip_bans.ban_ip("203.0.113.40", 60)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: its own connections, the parent's state
            try:
                ok = guard.ip_bans.is_ip_banned("203.0.113.40")
                guard.ip_bans.ban_ip("203.0.113.41", 60)
                os.write(write, b"1" if ok else b"0")
            finally:
                os._exit(0)
        os.close(write)
        answer = os.read(read, 1)
        os.waitpid(pid, 0)
        assert answer == b"1"
        assert guard.ip_bans.is_ip_banned("203.0.113.41")
        assert (guard.health()).status == "redis"


@FORKS_WITH_THREADS
def test_process_guard_makes_a_new_guard_in_a_forked_child(redis_server: LocalRedisServer) -> None:
    """What `gunicorn --preload` does: the app (and a used guard) exists before the fork;
    each worker must get a guard of its own, started, while the parent keeps its own."""
    from guard_core._shared.policy.check_settings import CheckSettings
    from guard_core._shared.policy.request_model import RequestInfo
    from guard_core.adapters._process import ProcessGuard

    config = SecurityConfig(redis_url=redis_server.url, redis_prefix="pfork:")
    process = ProcessGuard(config, CheckSettings(default_limits="1/minute"))
    request = RequestInfo(peer="203.0.113.50", method="GET", path="/", route="/")
    assert process.check().check(request).allowed
    parent_guard = process.guard
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            child_guard = process.guard
            fresh = child_guard is not parent_guard and child_guard.health().status == "redis"
            # the limit was used up by the parent, through Redis
            limited = process.check().check(request).status == 429
            os.write(write, b"1" if fresh and limited else b"0")
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.waitpid(pid, 0)
    assert answer == b"1"
    assert process.guard is parent_guard
    process.close()
