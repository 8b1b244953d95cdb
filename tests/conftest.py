"""Session-wide fixtures shared by both faces: the real redis-server (one server, a Sentinel
topology and a Cluster, each started on first use) and the anyio backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from guard_core.testing import LocalRedisCluster, LocalRedisSentinel, LocalRedisServer


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[LocalRedisServer]:
    """One real redis-server on a free 127.0.0.1 port for the whole session."""
    with LocalRedisServer() as server:
        yield server


# -- topologies (issue 8): one of each for the whole session, flushed by each test's backend


@pytest.fixture(scope="session")
def redis_sentinel() -> Iterator[LocalRedisSentinel]:
    """A primary, a replica and 3 sentinels on free 127.0.0.1 ports for the whole session."""
    with LocalRedisSentinel() as topology:
        yield topology


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalRedisCluster]:
    """A 3-primary Redis Cluster on free 127.0.0.1 ports for the whole session."""
    with LocalRedisCluster() as cluster:
        yield cluster
