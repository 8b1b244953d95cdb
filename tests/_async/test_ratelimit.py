"""RateLimitManager and BehaviorTracker in every mode, written once for both faces."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from guard_core._shared.concurrency import async_sleep
from guard_core.handlers.behavior_handler import BehaviorTracker
from guard_core.handlers.ratelimit_handler import RateLimitManager
from guard_core.handlers.redis_handler import RedisManager
from guard_core.models import SecurityConfig
from guard_core.testing import LocalRedisServer
from tests.support.backends import StateEnv
from tests.support.workers import ASYNC_WORKERS, run_async_workers

pytestmark = pytest.mark.anyio


async def test_admits_up_to_the_limit_then_rejects(state_env: StateEnv) -> None:
    limiter = RateLimitManager(state_env.config, state_env.redis)
    results = [await limiter.check("10.0.0.1", limit=3, window=60) for _ in range(5)]
    assert [r.allowed for r in results] == [True, True, True, False, False]
    assert [r.count for r in results] == [1, 2, 3, 3, 3]  # rejected hits are not recorded
    assert [r.remaining for r in results] == [2, 1, 0, 0, 0]
    assert all(r.limit == 3 for r in results)
    assert all(0 < r.reset_after <= 60 for r in results)
    other = await limiter.check("10.0.0.2", limit=3, window=60)
    assert other.allowed and other.count == 1


async def test_window_slides(state_env: StateEnv) -> None:
    limiter = RateLimitManager(state_env.config, state_env.redis)
    assert (await limiter.check("a", limit=1, window=0.2)).allowed
    assert not (await limiter.check("a", limit=1, window=0.2)).allowed
    await async_sleep(0.25)
    assert (await limiter.check("a", limit=1, window=0.2)).allowed


async def test_endpoints_are_separate_and_reset_clears(state_env: StateEnv) -> None:
    limiter = RateLimitManager(state_env.config, state_env.redis)
    assert (await limiter.check("c", endpoint="/login", limit=1, window=60)).allowed
    assert not (await limiter.check("c", endpoint="/login", limit=1, window=60)).allowed
    assert (await limiter.check("c", endpoint="/search", limit=1, window=60)).allowed
    assert (await limiter.check("c", limit=1, window=60)).allowed
    await limiter.reset("c", endpoint="/login")
    assert (await limiter.check("c", endpoint="/login", limit=1, window=60)).allowed
    assert not (await limiter.check("c", limit=1, window=60)).allowed


async def test_defaults_come_from_config(state_env: StateEnv) -> None:
    import dataclasses

    config = dataclasses.replace(state_env.config, rate_limit=2, rate_limit_window=30)
    limiter = RateLimitManager(config, state_env.redis)
    results = [await limiter.check("d") for _ in range(3)]
    assert [r.allowed for r in results] == [True, True, False]
    assert results[0].limit == 2


async def test_redis_layout(shared_env: StateEnv) -> None:
    limiter = RateLimitManager(shared_env.config, shared_env.redis)
    await limiter.check("10.0.0.1", limit=5, window=60)
    await limiter.check("10.0.0.1", endpoint="/api", limit=5, window=60)
    inspect = shared_env.inspect
    assert inspect is not None
    window = shared_env.key("rate_limit", "rate:10.0.0.1")
    assert inspect.type(window) == "zset"
    assert inspect.zcard(window) == 1
    assert inspect.zcard(shared_env.key("rate_limit", "rate:10.0.0.1:/api")) == 1
    assert 0 < inspect.pttl(window) <= 60_000


async def test_script_is_reloaded_after_script_flush(shared_env: StateEnv) -> None:
    limiter = RateLimitManager(shared_env.config, shared_env.redis)
    assert (await limiter.check("e", limit=2, window=60)).count == 1
    assert shared_env.inspect is not None
    shared_env.inspect.script_flush()
    assert (await limiter.check("e", limit=2, window=60)).count == 2


async def test_two_instances_share_one_limit(shared_env: StateEnv) -> None:
    first = RateLimitManager(shared_env.config, shared_env.redis)
    second = RateLimitManager(shared_env.config, shared_env.redis)
    assert (await first.check("f", limit=2, window=60)).allowed
    assert (await second.check("f", limit=2, window=60)).allowed
    assert not (await first.check("f", limit=2, window=60)).allowed
    assert not (await second.check("f", limit=2, window=60)).allowed


async def test_concurrent_callers_admit_exactly_the_limit(state_env: StateEnv) -> None:
    limiter = RateLimitManager(state_env.config, state_env.redis)
    per_worker = -(-200 // ASYNC_WORKERS)  # at least 200 hits in all
    admitted: list[bool] = []

    async def hit(index: int) -> None:
        for _ in range(per_worker):
            admitted.append((await limiter.check("burst", limit=100, window=60)).allowed)

    await run_async_workers(ASYNC_WORKERS, hit)
    assert len(admitted) == ASYNC_WORKERS * per_worker >= 200
    assert admitted.count(True) == 100


async def test_bad_arguments(state_env: StateEnv) -> None:
    limiter = RateLimitManager(state_env.config, state_env.redis)
    cases: list[tuple[dict[str, Any], type[Exception]]] = [
        ({"identifier": ""}, ValueError),
        ({"identifier": None}, TypeError),
        ({"identifier": "x", "endpoint": 5}, TypeError),
        ({"identifier": "x", "limit": 0}, ValueError),
        ({"identifier": "x", "limit": 1.5}, TypeError),
        ({"identifier": "x", "window": 0}, ValueError),
        ({"identifier": "x", "window": float("inf")}, ValueError),
        ({"identifier": "x", "window": "60"}, TypeError),
    ]
    for kwargs, error in cases:
        identifier = kwargs.pop("identifier")
        with pytest.raises(error):
            await limiter.check(identifier, **kwargs)


async def test_no_redis_manager_at_all() -> None:
    limiter = RateLimitManager(SecurityConfig(enable_redis=False))
    assert [(await limiter.check("g", limit=1, window=60)).allowed for _ in range(2)] == [
        True,
        False,
    ]


@pytest.mark.parametrize(
    ("policy", "admitted"),
    [("local", [True, True, False]), ("share", [True, False, False])],
)
async def test_redis_stopped_mid_run(
    private_server: LocalRedisServer, private_env: StateEnv, policy: str, admitted: list[bool]
) -> None:
    config = dataclasses.replace(private_env.config, rate_limit_outage_policy=policy)
    limiter = RateLimitManager(config, private_env.redis)
    other_redis = RedisManager(config)
    other = RateLimitManager(config, other_redis)
    assert (await limiter.check("h", limit=2, window=60)).allowed
    private_server.stop()
    # "local": per instance while Redis is gone; "share": what was left when it went away
    # (one instance here); no exception reaches the caller
    assert [(await limiter.check("h", limit=2, window=60)).allowed for _ in range(3)] == admitted
    private_server.start()
    assert (await limiter.check("i", limit=1, window=60)).allowed
    assert not (await other.check("i", limit=1, window=60)).allowed  # shared again
    await other_redis.close()


# -- behaviour tracking --------------------------------------------------------------------


async def test_behavior_threshold(state_env: StateEnv) -> None:
    tracker = BehaviorTracker(state_env.config, state_env.redis)
    seen = [
        await tracker.track_usage("/admin", "198.51.100.1", threshold=3, window=60)
        for _ in range(5)
    ]
    assert seen == [False, False, False, True, True]
    assert await tracker.track_usage("/admin", "198.51.100.2", threshold=3, window=60) is False
    assert await tracker.track_usage("/login", "198.51.100.1", threshold=3, window=60) is False
    # the mapped form of the same client shares the counter
    assert await tracker.track_usage("/admin", "::ffff:198.51.100.1", threshold=3, window=60)


async def test_behavior_is_shared_and_bounded(shared_env: StateEnv) -> None:
    first = BehaviorTracker(shared_env.config, shared_env.redis)
    second = BehaviorTracker(shared_env.config, shared_env.redis)
    for _ in range(10):
        await first.track_usage("/x", "192.0.2.1", threshold=2, window=60)
    assert await second.track_usage("/x", "192.0.2.1", threshold=2, window=60) is True
    assert shared_env.inspect is not None
    assert shared_env.inspect.zcard(shared_env.key("behavior_usage", "/x:192.0.2.1")) == 3


async def test_behavior_bad_arguments(state_env: StateEnv) -> None:
    tracker = BehaviorTracker(state_env.config, state_env.redis)
    with pytest.raises(ValueError):
        await tracker.track_usage("/x", "not-an-ip", threshold=1, window=1)
    with pytest.raises(ValueError):
        await tracker.track_usage("", "192.0.2.1", threshold=1, window=1)
    with pytest.raises(ValueError):
        await tracker.track_usage("/x", "192.0.2.1", threshold=0, window=1)


@pytest.mark.parametrize(
    ("policy", "exceeded"), [("local", [False, True]), ("share", [True, True])]
)
async def test_behavior_survives_redis_stopping(
    private_server: LocalRedisServer, private_env: StateEnv, policy: str, exceeded: list[bool]
) -> None:
    config = dataclasses.replace(private_env.config, rate_limit_outage_policy=policy)
    tracker = BehaviorTracker(config, private_env.redis)
    assert not await tracker.track_usage("/y", "192.0.2.9", threshold=1, window=60)
    private_server.stop()
    # "share" remembers the use Redis counted before it went away
    assert [
        await tracker.track_usage("/y", "192.0.2.9", threshold=1, window=60) for _ in range(2)
    ] == exceeded
    private_server.start()
    assert not await tracker.track_usage("/z", "192.0.2.9", threshold=1, window=60)
    assert private_env.inspect is not None
    assert private_env.inspect.zcard("guard_core:behavior_usage:/z:192.0.2.9") == 1


async def test_one_client_one_window_whatever_the_address_form(state_env: StateEnv) -> None:
    limiter = RateLimitManager(state_env.config, state_env.redis)
    assert (await limiter.check("192.0.2.8", limit=2, window=60)).count == 1
    assert (await limiter.check("::ffff:192.0.2.8", limit=2, window=60)).count == 2
    assert (await limiter.check("2001:db8::1", limit=2, window=60)).count == 1
    assert (await limiter.check("2001:DB8:0::1", limit=2, window=60)).count == 2


async def test_bad_arguments_are_refused_after_good_ones_were_remembered(
    state_env: StateEnv,
) -> None:
    """Keys, limits and windows of earlier calls are remembered or checked inline: bad
    input that resembles them is still refused, and counts nothing."""
    limiter = RateLimitManager(state_env.config, state_env.redis)
    for _ in range(2):
        await limiter.check("192.0.2.30", limit=100, window=60.0)
        await limiter.check("192.0.2.30", endpoint="/a", limit=100, window=60)
    cases: list[tuple[object, dict[str, Any], type[Exception]]] = [
        (b"192.0.2.30", {}, TypeError),
        (["192.0.2.30"], {}, TypeError),
        (("192.0.2.30", "/a"), {}, TypeError),
        ("192.0.2.30", {"endpoint": None}, TypeError),
        ("192.0.2.30", {"endpoint": b"/a"}, TypeError),
        ("192.0.2.30", {"endpoint": ["/a"]}, TypeError),
        ("\ud800", {}, ValueError),
        ("192.0.2.30", {"limit": True}, TypeError),
        ("192.0.2.30", {"limit": 100.0}, TypeError),
        ("192.0.2.30", {"limit": -100}, ValueError),
        ("192.0.2.30", {"limit": 2**53 + 1}, ValueError),
        ("192.0.2.30", {"window": True}, TypeError),
        ("192.0.2.30", {"window": 0.0005}, ValueError),
        ("192.0.2.30", {"window": float("nan")}, ValueError),
        ("192.0.2.30", {"window": float(2**31)}, ValueError),
        ("192.0.2.30", {"window": 2**31}, ValueError),
    ]
    for identifier, kwargs, error in cases:
        with pytest.raises(error):
            await limiter.check(identifier, **kwargs)  # type: ignore[arg-type]
    after = await limiter.check("192.0.2.30", limit=100, window=60.0)
    assert after.count == 3  # the refused calls recorded nothing


async def test_remembered_keys_stay_one_window_per_client(state_env: StateEnv) -> None:
    """The memo of keys is bounded (here by 4 entries) and, emptied or not, both forms of
    an address count in one window."""
    config = dataclasses.replace(state_env.config, rate_limit_max_tracked=4)
    limiter = RateLimitManager(config, state_env.redis)
    counts = []
    for _ in range(3):
        counts.append((await limiter.check("::ffff:192.0.2.31", limit=100, window=60)).count)
        counts.append((await limiter.check("192.0.2.31", limit=100, window=60)).count)
        for other in ("a", "b", "c"):  # fills the memo: it starts again empty
            await limiter.check(other, limit=100, window=60)
    assert counts == [1, 2, 3, 4, 5, 6]


async def test_config_defaults_are_checked_like_arguments(state_env: StateEnv) -> None:
    """A default window the config accepts but a window may not be is refused on use."""
    config = dataclasses.replace(state_env.config, rate_limit_window=0.0001)
    limiter = RateLimitManager(config, state_env.redis)
    with pytest.raises(ValueError, match="window"):
        await limiter.check("192.0.2.32")
    assert (await limiter.check("192.0.2.32", window=60)).count == 1


async def test_hits_of_two_instances_never_share_an_id(shared_env: StateEnv) -> None:
    """Each hit sent to the shared window is its own member: none replaces another's (hit
    by hit: leases, which count differently, are tested in test_window_leases)."""
    config = dataclasses.replace(shared_env.config, rate_limit_lease=0)
    first = RateLimitManager(config, shared_env.redis)
    second = RateLimitManager(config, shared_env.redis)
    for _ in range(50):
        await first.check("192.0.2.33", limit=1000, window=60)
        await second.check("192.0.2.33", limit=1000, window=60)
    assert (await first.check("192.0.2.33", limit=1000, window=60)).count == 101
    assert shared_env.inspect is not None
    assert shared_env.inspect.zcard(shared_env.key("rate_limit", "rate:192.0.2.33")) == 101


async def test_a_request_of_cost_n_counts_as_n_hits(state_env: StateEnv) -> None:
    limiter = RateLimitManager(state_env.config, state_env.redis)
    first = await limiter.check("cost", limit=5, window=60, cost=3)
    assert (first.allowed, first.count, first.remaining) == (True, 3, 2)
    refused = await limiter.check("cost", limit=5, window=60, cost=3)
    assert (refused.allowed, refused.count) == (False, 3)  # nothing recorded when refused
    fits = await limiter.check("cost", limit=5, window=60, cost=2)
    assert (fits.allowed, fits.count, fits.remaining) == (True, 5, 0)
    assert not (await limiter.check("cost", limit=5, window=60)).allowed
    # a cost above the limit is never admitted, and leaves the window as it was
    too_big = await limiter.check("empty", limit=2, window=60, cost=3)
    assert (too_big.allowed, too_big.count, too_big.reset_after) == (False, 0, 0.0)
    assert (await limiter.check("empty", limit=2, window=60, cost=2)).allowed


async def test_a_bad_cost_is_refused_before_counting(state_env: StateEnv) -> None:
    limiter = RateLimitManager(state_env.config, state_env.redis)
    for cost in (0, -1, 1001):
        with pytest.raises(ValueError, match="cost"):
            await limiter.check("bad", limit=5, window=60, cost=cost)
    with pytest.raises(TypeError, match="cost"):
        await limiter.check("bad", limit=5, window=60, cost=2.0)  # type: ignore[arg-type]
    assert (await limiter.check("bad", limit=1, window=60)).allowed  # nothing was counted
