"""Fixtures of one face: a backend (fakeredis or the real server) and managers on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Generator
from typing import Any

import fakeredis
import pytest
import redis

from guard_core._shared.policy.check_settings import CheckSettings
from guard_core.guard import Guard
from guard_core.handlers.redis_handler import RedisManager
from guard_core.models import SecurityConfig
from guard_core.request_check import RequestCheck
from guard_core.testing import LocalRedisServer
from tests.support.backends import REAL_TOPOLOGIES, Backend, ClusterInspect, StateEnv
from tests.support.topologies import LocalRedisCluster, LocalRedisSentinel


@pytest.fixture
def backend_fakeredis() -> Backend:
    server = fakeredis.FakeServer()
    return Backend(
        name="fakeredis",
        url="redis://127.0.0.1:6379/0",
        client_factory=lambda config: fakeredis.FakeAsyncRedis(
            server=server, decode_responses=True, max_connections=1000
        ),
        inspect=fakeredis.FakeRedis(server=server, decode_responses=True),
    )


@pytest.fixture
def backend_redis(redis_server: LocalRedisServer) -> Generator[Backend, None, None]:
    inspect = redis.Redis.from_url(redis_server.url, decode_responses=True)
    inspect.flushall()
    yield Backend(name="redis", url=redis_server.url, client_factory=None, inspect=inspect)
    inspect.close()


@pytest.fixture
def backend_sentinel(redis_sentinel: LocalRedisSentinel) -> Generator[Backend, None, None]:
    """The session's Sentinel topology (flushed); `inspect` talks to its master."""
    inspect = redis.Redis(port=redis_sentinel.master_port(), decode_responses=True)
    inspect.flushall()
    yield Backend(name="sentinel", url=redis_sentinel.url, client_factory=None, inspect=inspect)
    inspect.close()


@pytest.fixture
def backend_cluster(redis_cluster: LocalRedisCluster) -> Generator[Backend, None, None]:
    """The session's Cluster (flushed); `inspect` is a Cluster client."""
    inspect = ClusterInspect(
        host="127.0.0.1", port=redis_cluster.nodes[0].port, decode_responses=True
    )
    inspect.flushall()
    inspect.script_flush()
    yield Backend(name="cluster", url=redis_cluster.url, client_factory=None, inspect=inspect)
    inspect.close()


@pytest.fixture(params=["fakeredis", *REAL_TOPOLOGIES])
def backend(request: pytest.FixtureRequest) -> Backend:
    """The fakeredis server, or a real one, a Sentinel topology or a Cluster (flushed), with a
    client to inspect it."""
    found: Backend = request.getfixturevalue("backend_" + request.param)
    return found


@pytest.fixture
async def make_manager(backend: Backend) -> AsyncIterator[Callable[..., RedisManager]]:
    """Build managers on the backend (config fields as keywords); all closed afterwards."""
    made: list[RedisManager] = []

    def make(**fields: Any) -> RedisManager:
        fields.setdefault("redis_url", backend.url)
        manager = RedisManager(SecurityConfig(**fields), client_factory=backend.client_factory)
        made.append(manager)
        return manager

    yield make
    for manager in made:
        await manager.close()


@pytest.fixture
async def manager(make_manager: Callable[..., RedisManager]) -> RedisManager:
    created = make_manager()
    await created.initialize()
    return created


async def open_env(request: pytest.FixtureRequest, mode: str) -> StateEnv:
    if mode == "disabled":
        config = SecurityConfig(enable_redis=False)
        return StateEnv(mode=mode, config=config, redis=RedisManager(config), inspect=None)
    backend = request.getfixturevalue("backend_" + mode)
    config = SecurityConfig(redis_url=backend.url)
    manager = RedisManager(config, client_factory=backend.client_factory)
    await manager.initialize()
    return StateEnv(mode=mode, config=config, redis=manager, inspect=backend.inspect)


@pytest.fixture(params=["fakeredis", *REAL_TOPOLOGIES, "disabled"])
async def state_env(request: pytest.FixtureRequest) -> AsyncIterator[StateEnv]:
    """Subsystem state on fakeredis, on real Redis (one server, Sentinel, Cluster), or with
    Redis disabled."""
    env = await open_env(request, request.param)
    yield env
    await env.redis.close()


@pytest.fixture(params=["fakeredis", *REAL_TOPOLOGIES])
async def shared_env(request: pytest.FixtureRequest) -> AsyncIterator[StateEnv]:
    """Subsystem state on fakeredis or on real Redis, in each topology (for sharing between
    instances)."""
    env = await open_env(request, request.param)
    yield env
    await env.redis.close()


@pytest.fixture
def private_server() -> Generator[LocalRedisServer, None, None]:
    """A redis-server of this test's own, which the test may stop and start again."""
    with LocalRedisServer() as server:
        yield server


@pytest.fixture
async def private_env(private_server: LocalRedisServer) -> AsyncIterator[StateEnv]:
    """Subsystem state on `private_server`, for tests that stop Redis mid-run."""
    # no fail-fast pause after a failure: tests stop and restart the server and expect the
    # very next call to find it (the breaker's timing is tested in the fault suite)
    config = SecurityConfig(
        redis_url=private_server.url, redis_connect_timeout=0.5, redis_breaker_base_delay=0
    )
    manager = RedisManager(config)
    await manager.initialize()
    inspect = redis.Redis.from_url(private_server.url, decode_responses=True)
    yield StateEnv(mode="redis", config=config, redis=manager, inspect=inspect)
    await manager.close()
    inspect.close()


@pytest.fixture
async def make_check(backend: Backend) -> AsyncIterator[Callable[..., RequestCheck]]:
    """Build checks over guards on the backend (one guard per call: instances of an app)."""
    guards: list[Guard] = []

    async def make(**settings: Any) -> RequestCheck:
        config = SecurityConfig(redis_url=backend.url, rate_limit=1000)
        guard = Guard(config, client_factory=backend.client_factory)
        await guard.start()
        guards.append(guard)
        return RequestCheck(guard, CheckSettings(**settings))

    yield make  # type: ignore[misc,unused-ignore]
    for guard in guards:
        await guard.close()
