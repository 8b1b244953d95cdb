"""The `*_now` answers the request check takes before it awaits, written once for both faces.

Each gives what its awaited twin gives when it can tell it from memory, and None when the
twin would go to Redis first (a sync after an outage, a re-read that is due, a verdict not
held, a lease not held); None never counts or changes anything.
"""

from __future__ import annotations

import dataclasses

import pytest

from guard_core.handlers.ipban_handler import IPBanManager
from guard_core.handlers.ratelimit_handler import RateLimitManager
from guard_core.handlers.security_headers_handler import SecurityHeadersManager
from guard_core.handlers.suspatterns_handler import SusPatternsManager
from guard_core.models import SecurityConfig
from tests.support.backends import StateEnv

pytestmark = pytest.mark.anyio

TEXTS = ["hello world", "<script>alert(1)</script>", "' OR 1=1 --", "/api/v1/users/42"]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_headers_now_waits_for_the_first_read_then_matches_the_awaited_answer(
    state_env: StateEnv,
) -> None:
    clock = Clock()
    config = dataclasses.replace(state_env.config, redis_state_refresh_interval=5.0)
    manager = SecurityHeadersManager(config, state_env.redis, clock=clock)
    if state_env.shared:
        assert manager.get_headers_now("/a") is None  # the shared document was never read
    awaited = await manager.get_headers("/a")
    assert manager.get_headers_now("/a") == awaited
    assert manager.get_headers_now(None) == await manager.get_headers(None)
    clock.now += 5.0  # the re-read is due
    assert (manager.get_headers_now("/a") is None) == state_env.shared
    assert await manager.get_headers("/a") == awaited
    assert manager.get_headers_now("/a") == awaited
    with pytest.raises(TypeError, match="path must be a str or None, not bytes"):
        manager.get_headers_now(b"/a")  # type: ignore[arg-type]


async def test_detect_now_waits_for_the_first_read_then_matches_detect(
    state_env: StateEnv,
) -> None:
    config = dataclasses.replace(state_env.config, redis_state_refresh_interval=3600)
    patterns = SusPatternsManager(config, state_env.redis)
    if state_env.shared:
        assert patterns.detect_now(TEXTS[1]) is None  # the custom patterns were never read
    awaited = [await patterns.detect(text) for text in TEXTS]
    assert [patterns.detect_now(text) for text in TEXTS] == awaited
    assert awaited[0] == () and awaited[1] != ()
    await patterns.add_pattern(r"forbidden-\d+")
    # its own write's invalidation may make a re-read due: then None, and detect re-reads
    now = patterns.detect_now("a forbidden-42 word")
    awaited_custom = await patterns.detect("a forbidden-42 word")
    assert [m.category for m in awaited_custom] == ["custom"]
    assert now is None or now == awaited_custom
    with pytest.raises(TypeError, match="content must be a str, not bytes"):
        patterns.detect_now(b"<script>")  # type: ignore[arg-type]


async def test_ban_now_tells_only_verdicts_held_and_never_a_stale_one(
    shared_env: StateEnv,
) -> None:
    bans = IPBanManager(shared_env.config, shared_env.redis)
    other = IPBanManager(shared_env.config, shared_env.redis)
    assert bans.is_ip_banned_now("10.1.1.1") is None  # nothing held yet
    assert await bans.is_ip_banned("10.1.1.1") is False
    held = bans.is_ip_banned_now("10.1.1.1")
    assert held in (False, None)  # held only while invalidations are received
    await other.ban_ip("10.1.1.1", 60)
    # a ban made on this instance's Redis is never answered "not banned" from memory
    assert await bans.is_ip_banned("10.1.1.1") is True
    assert bans.is_ip_banned_now("10.1.1.1") in (True, None)
    assert bans.is_ip_banned_now(17) is None  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await bans.is_ip_banned(17)  # type: ignore[arg-type]


async def test_check_now_without_redis_counts_like_check() -> None:
    limiter = RateLimitManager(SecurityConfig(enable_redis=False), None)
    results = [limiter.check_now("10.0.0.9", limit=3, window=60) for _ in range(4)]
    assert [r is not None and r.allowed for r in results] == [True, True, True, False]
    assert [r.count for r in results if r is not None] == [1, 2, 3, 3]
    assert (await limiter.check("10.0.0.9", limit=3, window=60)).allowed is False


async def test_check_now_spends_only_a_held_lease_and_counts_each_hit_once(
    shared_env: StateEnv,
) -> None:
    config = dataclasses.replace(shared_env.config, rate_limit_lease=0.05)
    limiter = RateLimitManager(config, shared_env.redis)
    key = shared_env.key("rate_limit", "rate:10.0.0.8")
    assert shared_env.inspect is not None
    assert limiter.check_now("10.0.0.8", limit=1000, window=60) is None  # no lease held
    assert shared_env.inspect.zcard(key) == 0  # and nothing was counted
    counts = []
    fallbacks = 0
    for _ in range(300):
        result = limiter.check_now("10.0.0.8", limit=1000, window=60)
        if result is None:
            fallbacks += 1
            result = await limiter.check("10.0.0.8", limit=1000, window=60)
        assert result.allowed and result.limit == 1000
        counts.append(result.count)
    assert counts == list(range(1, 301))  # one count per request, none twice, none lost
    assert 0 < fallbacks < 30  # most were spent from leases held here
    # a limit too small to lease always needs Redis
    assert limiter.check_now("10.0.0.8", endpoint="/x", limit=10, window=60) is None


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"limit": 0}, ValueError),
        ({"window": -1.0}, ValueError),
        ({"cost": 0}, ValueError),
        ({"limit": "5"}, TypeError),
    ],
)
async def test_check_now_refuses_what_check_refuses(
    state_env: StateEnv, arguments: dict[str, object], error: type[Exception]
) -> None:
    limiter = RateLimitManager(state_env.config, state_env.redis)
    with pytest.raises(error) as now:
        limiter.check_now("10.0.0.7", **arguments)  # type: ignore[arg-type]
    with pytest.raises(error) as awaited:
        await limiter.check("10.0.0.7", **arguments)  # type: ignore[arg-type]
    assert str(now.value) == str(awaited.value)
