"""Session-wide fixtures shared by both faces: the real redis-server (one server, a Sentinel
topology and a Cluster, each started on first use) and the anyio backend; the
`server_matrix` mark.

The server is `redis-server` on PATH, or the binary named by `GUARD_TEST_SERVER_BIN`
(`make matrix` runs the `server_matrix` tests against Valkey 8 and Redis 6.2 so)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from guard_core.testing import LocalRedisServer, redis_server_binary, server_version
from tests.support.topologies import LocalRedisCluster, LocalRedisSentinel

#: The modules (either face) whose tests `make matrix` runs again on each server it has
#: (`-m server_matrix`): one server, Sentinel and Cluster, outages, invalidation, the Lua
#: scripts' subsystems and what the server's replies are read for (INFO, CLIENT, SCAN).
SERVER_MATRIX_MODULES = frozenset(
    {
        "test_redis_manager",
        "test_topologies",
        "test_invalidation",
        "test_outage_share",
        "test_outage_mirror",
        "test_fault_injection",
        "test_hung_redis",
        "test_restart_latency",
        "test_state_layer",
        "test_connection_budget",
        "test_keyspace_scans",
        "test_ratelimit",
        "test_ipban",
        "test_bulk_bans",
        "test_suspatterns",
        "test_cloud_handler",
        "test_guard",
        "test_hostile_input",
        "test_real_servers",
        "test_cli",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        # the matrix's servers come from wheels built without TLS: TLS runs on Debian's
        if (
            item.path.stem in SERVER_MATRIX_MODULES
            and item.get_closest_marker("tls_server") is None
        ):
            item.add_marker(pytest.mark.server_matrix)


def pytest_report_header() -> str:
    try:
        return f"server: {server_version()} ({redis_server_binary()})"
    except RuntimeError as exc:  # no server: the tests that need one say so
        return f"server: none ({exc})"


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
