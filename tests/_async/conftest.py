"""Fixtures of one face: a backend (fakeredis or the real server) and managers on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import fakeredis
import pytest
import redis

from guard_core.handlers.redis_handler import RedisManager
from guard_core.models import SecurityConfig
from tests.support.backends import Backend


@pytest.fixture(params=["fakeredis", "redis"])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "fakeredis":
        server = fakeredis.FakeServer()
        return Backend(
            name="fakeredis",
            url="redis://127.0.0.1:6379/0",
            client_factory=lambda config: fakeredis.FakeAsyncRedis(
                server=server, decode_responses=True, max_connections=1000
            ),
            inspect=fakeredis.FakeRedis(server=server, decode_responses=True),
        )
    url = request.getfixturevalue("redis_server").url
    inspect = redis.Redis.from_url(url, decode_responses=True)
    inspect.flushall()
    request.addfinalizer(inspect.close)
    return Backend(name="redis", url=url, client_factory=None, inspect=inspect)


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
