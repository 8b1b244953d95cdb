"""Local quota leases (`SecurityConfig.rate_limit_lease`), written once for both faces."""

from __future__ import annotations

import dataclasses

import pytest

from guard_core._shared.concurrency import async_sleep
from guard_core._shared.storage.window_leases import LEASE_START, WindowLeases
from guard_core.handlers.ratelimit_handler import RateLimitManager
from guard_core.models import SecurityConfig
from tests.support.backends import StateEnv

pytestmark = pytest.mark.anyio


def leased(env: StateEnv, fraction: float = 0.01) -> RateLimitManager:
    return RateLimitManager(dataclasses.replace(env.config, rate_limit_lease=fraction), env.redis)


def leases_of(limiter: RateLimitManager) -> WindowLeases:
    leases = limiter._store.leases
    assert leases is not None
    return leases


async def test_one_instance_counts_every_hit_and_stops_at_the_limit(shared_env: StateEnv) -> None:
    limiter = leased(shared_env)
    results = [await limiter.check("10.0.0.1", limit=1000, window=60) for _ in range(1010)]
    assert [r.allowed for r in results] == [True] * 1000 + [False] * 10
    assert [r.count for r in results[:1000]] == list(range(1, 1001))
    assert [r.remaining for r in results[:3]] == [999, 998, 997]
    assert all(0 < r.reset_after <= 60 for r in results)
    leases = leases_of(limiter)
    # most hits came from leases (doubling from LEASE_START up to 1% of the limit)
    assert leases.spent > 800 and leases.taken < 200
    assert shared_env.inspect is not None
    assert shared_env.inspect.zcard(shared_env.key("rate_limit", "rate:10.0.0.1")) == 1000


@pytest.mark.parametrize("first", ["a", "b"])
async def test_two_instances_admit_the_limit_together_exactly(
    shared_env: StateEnv, first: str
) -> None:
    a, b = leased(shared_env), leased(shared_env)
    order = [a, b] if first == "a" else [b, a]
    admitted = 0
    refused_in_a_row = 0
    while refused_in_a_row < 6:
        for limiter in order:
            if (await limiter.check("shared-key", limit=500, window=60)).allowed:
                admitted += 1
                refused_in_a_row = 0
            else:
                refused_in_a_row += 1
    # every leased hit was recorded when leased, and both spent what they held
    assert admitted == 500
    assert leases_of(a).spent > 0 and leases_of(b).spent > 0


async def test_an_idle_instance_takes_no_lease_and_sees_the_others_hits(
    shared_env: StateEnv,
) -> None:
    busy, idle = leased(shared_env), leased(shared_env)
    for _ in range(300):
        assert (await busy.check("k", limit=1000, window=60)).allowed
    first = await idle.check("k", limit=1000, window=60)
    assert first.allowed
    # the idle one's first hit went alone, on top of what busy recorded (its 300 hits and
    # what is left of its lease, at most 1 % of the limit): it reserved nothing
    assert 301 <= first.count <= 311
    assert leases_of(idle).taken == 0 and leases_of(idle).spent == 0
    assert shared_env.inspect is not None
    assert shared_env.inspect.zcard(shared_env.key("rate_limit", "rate:k")) == first.count


async def test_limits_too_small_to_lease_go_to_redis_every_time(shared_env: StateEnv) -> None:
    limiter = leased(shared_env)  # 1 % of 150 is 1 hit: not leased
    results = [await limiter.check("small", limit=150, window=60) for _ in range(152)]
    assert [r.allowed for r in results].count(True) == 150
    assert leases_of(limiter).taken == 0
    assert shared_env.inspect is not None
    assert shared_env.inspect.zcard(shared_env.key("rate_limit", "rate:small")) == 150


async def test_a_lease_ends_after_its_share_of_the_window(shared_env: StateEnv) -> None:
    limiter = leased(shared_env, fraction=0.1)  # 0.1 x 2 s: a lease lasts 0.2 s
    await limiter.check("t", limit=1000, window=2)  # the first hit goes alone
    leases = leases_of(limiter)
    assert leases.taken == 0
    await limiter.check("t", limit=1000, window=2)
    assert leases.taken == 1
    await limiter.check("t", limit=1000, window=2)
    assert leases.taken == 1 and leases.spent == 1
    await async_sleep(0.3)
    after = await limiter.check("t", limit=1000, window=2)
    assert leases.taken == 2
    # the unspent hits of the first lease stay counted: a lease never frees room for others
    assert after.count >= LEASE_START + 2


async def test_reset_drops_the_lease(shared_env: StateEnv) -> None:
    limiter = leased(shared_env)
    for _ in range(50):
        await limiter.check("r", limit=1000, window=60)
    await limiter.reset("r")
    again = await limiter.check("r", limit=1000, window=60)
    assert again.allowed and again.count == 1


async def test_a_lease_near_the_limit_grants_what_is_left(shared_env: StateEnv) -> None:
    plain, lessee = leased(shared_env, fraction=0), leased(shared_env)
    for _ in range(997):
        assert (await plain.check("n", limit=1000, window=60)).allowed
    results = [await lessee.check("n", limit=1000, window=60) for _ in range(5)]
    assert [r.allowed for r in results] == [True, True, True, False, False]
    assert [r.count for r in results[:3]] == [998, 999, 1000]


async def test_costly_hits_are_leased_whole(shared_env: StateEnv) -> None:
    limiter = leased(shared_env, fraction=0.05)  # up to 50 hits of 1000 per lease
    results = [await limiter.check("c", limit=1000, window=60, cost=10) for _ in range(101)]
    assert [r.allowed for r in results].count(True) == 100
    assert [r.count for r in results[:3]] == [10, 20, 30]


async def test_leases_are_on_by_default_and_zero_turns_them_off(shared_env: StateEnv) -> None:
    default = RateLimitManager(shared_env.config, shared_env.redis)
    assert leases_of(default).fraction == 0.01
    off = leased(shared_env, fraction=0)
    assert off._store.leases is None
    results = [await off.check("off", limit=1000, window=60) for _ in range(3)]
    assert [r.count for r in results] == [1, 2, 3]
    assert shared_env.inspect is not None
    assert shared_env.inspect.zcard(shared_env.key("rate_limit", "rate:off")) == 3


async def test_a_lease_held_when_redis_stops_is_spent_without_it(
    private_env: StateEnv, private_server: object
) -> None:
    limiter = leased(private_env, fraction=0.5)  # a lease lasts 30 s here
    for _ in range(20):  # grows the lease past what the rest of the test spends
        await limiter.check("o", limit=10_000, window=60)
    spent = leases_of(limiter).spent
    private_server.stop()  # type: ignore[attr-defined]
    results = [await limiter.check("o", limit=10_000, window=60) for _ in range(5)]
    assert all(r.allowed for r in results)
    assert leases_of(limiter).spent == spent + 5


@pytest.mark.parametrize("value", [-0.1, 0.6, "0.01", True, float("nan")])
def test_bad_lease_fractions_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match="rate_limit_lease"):
        SecurityConfig(rate_limit_lease=value)  # type: ignore[arg-type]
