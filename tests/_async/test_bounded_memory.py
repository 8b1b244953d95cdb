"""Bounded memory fallbacks through `Guard`: evictions counted in `health()`, one warning."""

from __future__ import annotations

import logging

import pytest

from guard_core.guard import Guard
from guard_core.models import SecurityConfig

pytestmark = pytest.mark.anyio


def in_memory(**fields: int) -> SecurityConfig:
    return SecurityConfig(enable_redis=False, **fields)  # type: ignore[arg-type]


def full_warnings(caplog: pytest.LogCaptureFixture, start: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.getMessage().startswith(start)
    ]


async def test_ban_flood_keeps_long_bans_and_counts_evictions(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="guard_core")
    async with Guard(in_memory(ip_ban_max_entries=50)) as guard:
        for i in range(20):
            await guard.ip_bans.ban_ip(f"198.51.100.{i}", 86_400, reason="long")
        for i in range(200):
            await guard.ip_bans.ban_ip(f"203.0.{i // 250}.{i % 250}", 60, reason="short")
        for i in range(20):
            assert await guard.ip_bans.is_ip_banned(f"198.51.100.{i}")
        assert len(await guard.ip_bans.list_bans()) == 50
        health = await guard.health()
        assert health.evictions["ip_bans"] == 220 - 50
        assert health.pending_writes == {
            "ip_bans": 0,
            "patterns": 0,
            "headers": 0,
            "rate_limits": 0,
            "allow_list": 0,
        }  # the existing keys are still there
    assert len(full_warnings(caplog, "Memory ban store full")) == 1


async def test_window_floods_are_counted_per_subsystem(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="guard_core")
    config = in_memory(rate_limit_max_tracked=10, behavior_max_tracked=5)
    async with Guard(config) as guard:
        for i in range(25):
            assert (await guard.rate_limiter.check(f"client-{i}", limit=3, window=60)).allowed
        for i in range(8):
            await guard.behavior.track_usage("login", f"192.0.2.{i}", threshold=3, window=60)
        health = await guard.health()
        assert health.evictions["rate_limits"] == 15
        assert health.evictions["behavior"] == 3
        assert health.evictions["journal"] == 0
    assert full_warnings(caplog, "Memory window store full") == [
        "Memory window store full (10 rate-limited identifiers): dropping the least "
        "recently used counts; raise the bound or bring Redis back",
        "Memory window store full (5 tracked (endpoint, client) pairs): dropping the least "
        "recently used counts; raise the bound or bring Redis back",
    ]
