"""Sentinel and Cluster specifics on real local topologies (both faces).

The whole subsystem suite already runs on both topologies (the `backend`, `state_env` and
`shared_env` fixtures); these tests cover what only a topology has: keys spread over
several primaries, a resharded slot, a failover.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from redis.crc import key_slot

from guard_core._shared.concurrency import async_sleep
from guard_core._shared.connection.redis_url import parse_redis_url
from guard_core._shared.connection.slots import AsyncSlots
from guard_core._shared.keys import build_key
from guard_core.connection.client import (
    SentinelMasterSSLConnection,
    build_client,
    tls_options,
)
from guard_core.exceptions import GuardRedisError
from guard_core.guard import Guard
from guard_core.handlers.ipban_handler import IPBanManager
from guard_core.handlers.ratelimit_handler import RateLimitManager
from guard_core.handlers.redis_handler import RedisManager
from guard_core.models import SecurityConfig
from guard_core.testing import ServerTLS, free_port
from tests.support.agents import AsyncRecordingAgent
from tests.support.backends import Backend
from tests.support.pki import make_test_pki
from tests.support.topologies import LocalRedisCluster, LocalRedisSentinel
from tests.support.workers import ASYNC_WORKERS, run_async_workers

pytestmark = pytest.mark.anyio

IDENTIFIERS = [f"10.1.{n // 250}.{n % 250}" for n in range(60)]


def topology_config(url: str, **fields: object) -> SecurityConfig:
    """Short timeouts and a quick breaker: a failover is noticed and left fast."""
    settings: dict[str, object] = {
        "redis_url": url,
        "redis_connect_timeout": 0.5,
        "redis_socket_timeout": 0.5,
        "redis_breaker_base_delay": 0.05,
        "redis_breaker_max_delay": 0.5,
        "redis_state_refresh_interval": 0.01,
    }
    settings.update(fields)
    return SecurityConfig(**settings)  # type: ignore[arg-type]


def count_keys_in_slot(port: int, slot: int) -> int:
    with redis.Redis(port=port) as node:
        return int(node.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot))


def primaries_holding(cluster: LocalRedisCluster, full_keys: list[str]) -> set[int]:
    return {cluster.port_of_slot(key_slot(key.encode())) for key in full_keys}


# -- clients built from the URL (no network) ---------------------------------------------


async def wait_until_shared(guard: Guard) -> None:
    """Let an idle instance's breaker (opened by its subscription) probe its way back."""
    for _ in range(400):
        if guard.redis.available and await guard.redis.ping():
            return
        await async_sleep(0.025)
    raise AssertionError("the instance never answered from Redis again")


async def test_tls_topology_urls_build_tls_clients() -> None:
    ca = "/etc/guard-test/ca.pem"
    # (a sync Cluster client connects when built: its TLS options are checked as such)
    cluster = tls_options(parse_redis_url(f"rediss+cluster://127.0.0.1:7000?ssl_ca_certs={ca}"))
    assert cluster == {
        "ssl": True,
        "ssl_cert_reqs": "required",
        "ssl_check_hostname": True,
        "ssl_ca_certs": ca,
    }
    assert tls_options(parse_redis_url("redis+cluster://127.0.0.1:7000")) == {}
    sentinel: Any = build_client(
        SecurityConfig(
            redis_url=f"rediss+sentinel://:pw@127.0.0.1:26379/svc?ssl_ca_certs={ca}"
            "&sentinel_password=sp"
        )
    )
    pool = sentinel.connection_pool
    assert issubclass(pool.connection_class, SentinelMasterSSLConnection)
    assert (pool.connection_kwargs["ssl_ca_certs"], pool.connection_kwargs["password"]) == (
        ca,
        "pw",
    )
    watcher = sentinel.sentinel_manager.sentinels[0].connection_pool.connection_kwargs
    assert (watcher["ssl_ca_certs"], watcher["password"]) == (ca, "sp")
    await sentinel.aclose()


async def test_slots_wait_for_a_free_one_and_give_up_after_their_timeout() -> None:
    """What bounds a Cluster manager's commands in flight (its client refuses when full)."""
    slots = AsyncSlots(2, 0.05)
    assert await slots.acquire()
    assert await slots.acquire()
    assert not await slots.acquire()  # none came free within the timeout
    slots.release()
    assert await slots.acquire()
    slots.release()
    slots.release()


@pytest.mark.parametrize("scheme", ["redis+sentinel", "redis+cluster"])
async def test_unreachable_topology_fails_with_503_and_no_password(
    scheme: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="guard_core")
    secret = "s3cr3t-topology"
    path = "/svc" if scheme == "redis+sentinel" else ""
    url = f"{scheme}://app:{secret}@127.0.0.1:{free_port()},127.0.0.1:{free_port()}{path}"
    manager = RedisManager(topology_config(url))
    agent = AsyncRecordingAgent()
    await manager.initialize_agent(agent)
    with pytest.raises(GuardRedisError) as raised:
        await manager.initialize()
    assert raised.value.status_code == 503
    with pytest.raises(GuardRedisError):  # failing fast now, still a 503
        await manager.get_key("ns", "k")
    texts = [caplog.text, str(raised.value), *(repr(event) for event in agent.events)]
    assert agent.events and all(secret not in text for text in texts)
    await manager.close()


# -- Cluster ------------------------------------------------------------------------------


async def test_cluster_operations_span_every_primary_without_crossslot(
    backend_cluster: Backend, redis_cluster: LocalRedisCluster
) -> None:
    manager = RedisManager(SecurityConfig(redis_url=backend_cluster.url))
    await manager.initialize()
    try:
        entries = {ip: (f"v{ip}", 600) for ip in IDENTIFIERS}
        assert await manager.set_many("banned_ips", entries) is True
        full_keys = [backend_cluster.key("banned_ips", ip) for ip in IDENTIFIERS]
        assert len(primaries_holding(redis_cluster, full_keys)) == len(redis_cluster.nodes)
        assert await manager.get_many("banned_ips", [*IDENTIFIERS, "absent"]) == [
            *(f"v{ip}" for ip in IDENTIFIERS),
            None,
        ]
        found = await manager.keys("banned_ips:*")
        assert found is not None
        assert sorted(found) == sorted(full_keys)
        assert sorted(manager.key_part("banned_ips", key) for key in found) == sorted(IDENTIFIERS)
        assert sorted(await manager.keys("banned_ips:10.1.0.1*") or []) == sorted(
            backend_cluster.key("banned_ips", ip) for ip in IDENTIFIERS if ip.startswith("10.1.0.1")
        )
        # one identifier's keys in several namespaces: one slot, so a transaction works
        assert await manager.incr("counter", IDENTIFIERS[0], ttl=60) == 1
        assert await manager.incr("counter", IDENTIFIERS[0], ttl=60) == 2
        assert 0 < backend_cluster.inspect.ttl(backend_cluster.key("counter", IDENTIFIERS[0])) <= 60
        assert await manager.delete_pattern("banned_ips:*") == len(IDENTIFIERS)
        assert await manager.keys("banned_ips:*") == []
        assert await manager.exists("counter", IDENTIFIERS[0]) is True
    finally:
        await manager.close()


async def test_subsystems_survive_a_resharded_slot(
    backend_cluster: Backend, redis_cluster: LocalRedisCluster
) -> None:
    config = SecurityConfig(redis_url=backend_cluster.url)
    manager = RedisManager(config)
    await manager.initialize()
    bans = IPBanManager(config, manager)
    limiter = RateLimitManager(config, manager)
    moving = IDENTIFIERS[7]
    try:
        for ip in IDENTIFIERS[:10]:
            assert await bans.ban_ip(ip, 600, reason="before the reshard")
        assert (await limiter.check(moving, limit=100, window=60)).allowed
        slot = key_slot(backend_cluster.key("banned_ips", moving).encode())
        # the key part is the hash tag: the same key part in another namespace, same slot
        assert slot == key_slot(backend_cluster.key("other", moving).encode())
        target = next(
            n.port for n in redis_cluster.nodes if n.port != redis_cluster.port_of_slot(slot)
        )
        source = redis_cluster.begin_migration(slot, target)
        try:
            # half-way: some of the slot's keys moved (ASK), the others not yet
            assert redis_cluster.migrate_keys(slot, source, target, 1) == 1
            assert count_keys_in_slot(source, slot) == 0  # so reads of it are answered ASK
            assert count_keys_in_slot(target, slot) == 1
            fresh = IPBanManager(config, manager)  # nothing in memory: answers from Redis
            for ip in IDENTIFIERS[:10]:
                assert await fresh.is_ip_banned(ip)
            assert (await limiter.check(moving, limit=100, window=60)).allowed
            assert await manager.get_many("banned_ips", IDENTIFIERS[:10]) is not None
            assert await bans.ban_ip(moving, 900, reason="rewritten mid-migration")
        finally:
            redis_cluster.finish_migration(slot, source, target)
        # the slot now lives elsewhere: the client's slot map is stale (MOVED)
        assert redis_cluster.port_of_slot(slot) == target
        fresh = IPBanManager(config, manager)
        for ip in IDENTIFIERS[:10]:
            assert await fresh.is_ip_banned(ip)
        verdict = await limiter.check(moving, limit=100, window=60)
        assert verdict.allowed
        assert await bans.unban_ip(moving)
        assert not await IPBanManager(config, manager).is_ip_banned(moving)
        assert manager.available
        assert manager.breaker_snapshot()["times_opened"] == 0
    finally:
        await manager.close()


# -- Sentinel ---------------------------------------------------------------------------


async def test_master_is_found_through_the_sentinels(
    backend_sentinel: Backend, redis_sentinel: LocalRedisSentinel
) -> None:
    manager = RedisManager(SecurityConfig(redis_url=backend_sentinel.url))
    await manager.initialize()
    try:
        assert await manager.set_key("ns", "k", "via sentinel") is True
        with redis.Redis(port=redis_sentinel.master_port(), decode_responses=True) as master:
            assert master.get("guard_core:ns:k") == "via sentinel"
    finally:
        await manager.close()


async def test_readonly_reply_sends_the_client_back_to_the_sentinels(
    backend_sentinel: Backend, redis_sentinel: LocalRedisSentinel
) -> None:
    manager = RedisManager(SecurityConfig(redis_url=backend_sentinel.url))
    await manager.initialize()
    try:
        master_port = redis_sentinel.master_port()
        replica = next(s for s in redis_sentinel.servers if s.port != master_port)
        async with manager.get_connection() as client:
            pool: Any = client.connection_pool
        # the state right after a demotion the client has not noticed: the pool believes
        # the master is a server that is now a replica, and holds a connection open to it
        connection = await pool.get_connection()
        await connection.disconnect()
        await connection.connect_to(("127.0.0.1", replica.port))
        connection.connection_pool.master_address = ("127.0.0.1", replica.port)
        await pool.release(connection)
        assert await manager.set_key("ns", "readonly", "written") is True
        assert connection.port == master_port  # reconnected where the sentinels point
        assert manager.available
        with redis.Redis(port=master_port, decode_responses=True) as master:
            assert master.get("guard_core:ns:readonly") == "written"
    finally:
        await manager.close()


@pytest.fixture(scope="module")
def failover_topology() -> Iterator[LocalRedisSentinel]:
    """A Sentinel topology of these tests' own: they demote and kill its master."""
    with LocalRedisSentinel(service="guard-failover") as topology:
        yield topology


def replicate_everything(topology: LocalRedisSentinel) -> None:
    """Wait until the replica holds every write made so far (replication is one ordered
    stream: once a later write is acknowledged by WAIT, the earlier ones are there too)."""
    with redis.Redis(port=topology.master_port(), decode_responses=True) as master:
        master.set("replication-marker", "1")
        assert master.execute_command("WAIT", 1, 5000) >= 1


async def test_demoted_master_sends_writes_to_the_new_master(
    failover_topology: LocalRedisSentinel,
) -> None:
    failover_topology.heal()
    manager = RedisManager(topology_config(failover_topology.url))
    await manager.initialize()
    try:
        assert await manager.set_key("ns", "before", "1") is True  # pooled connection
        replicate_everything(failover_topology)
        old_port = failover_topology.master_port()
        new_port = failover_topology.failover()
        assert new_port != old_port
        # the demoted master dropped the pooled connection: the retry asks the sentinels
        # again instead of reconnecting to the old address
        assert await manager.set_key("ns", "after", "2") is True
        with redis.Redis(port=new_port, decode_responses=True) as master:
            assert master.mget("guard_core:ns:before", "guard_core:ns:after") == ["1", "2"]
        assert await manager.get_key("ns", "before") == "1"
        assert manager.restarts == 0  # another server, not a restarted one
        assert manager.breaker_snapshot()["times_opened"] == 0  # no outage was seen
    finally:
        await manager.close()


async def test_sentinel_failover_mid_load_loses_no_replicated_ban(
    failover_topology: LocalRedisSentinel,
) -> None:
    failover_topology.heal()
    config = topology_config(failover_topology.url, redis_prefix="failover:")
    bans = [f"203.0.113.{n}" for n in range(1, 21)]
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(404)))
    async with Guard(config, http_client=client) as guard, Guard(config) as observer:
        for ip in bans:
            assert await guard.ip_bans.ban_ip(ip, 600, reason="before the failover")
        replicate_everything(failover_topology)
        old_port = failover_topology.master_port()

        async def load(index: int) -> None:
            for step in range(6):
                if index == 0 and step == 1:
                    failover_topology.kill_master()
                client_ip = f"198.51.100.{index % 250}"
                assert isinstance(await guard.ip_bans.is_ip_banned(client_ip), bool)
                verdict = await guard.rate_limiter.check(client_ip, limit=10_000, window=60)
                assert isinstance(verdict.allowed, bool)
                assert await guard.ip_bans.is_ip_banned(bans[index % len(bans)])

        await run_async_workers(ASYNC_WORKERS, load)
        new_port = failover_topology.wait_for_new_master(old_port)
        # shared mode comes back by itself: keep calling, never initialize() by hand
        for _ in range(400):
            if guard.redis.available and await guard.redis.ping():
                break
            assert await guard.ip_bans.is_ip_banned(bans[0])
            await async_sleep(0.025)
        assert guard.redis.available
        await wait_until_shared(observer)  # its invalidation subscription saw the failover too
        after = "203.0.113.200"
        assert await guard.ip_bans.ban_ip(after, 600, reason="after the failover")
        # bans made before (replicated) and after are in the new master, seen by others
        reader = IPBanManager(config, observer.redis)
        for ip in [*bans, after]:
            assert await reader.is_ip_banned(ip)
        with redis.Redis(port=new_port, decode_responses=True) as master:
            stored = [build_key("failover:", "banned_ips", ip) for ip in [*bans, after]]
            assert master.exists(*stored) == len(stored)


@pytest.fixture(scope="module")
def replicated_cluster() -> Iterator[LocalRedisCluster]:
    """A Cluster of these tests' own, one replica per primary: they kill a primary."""
    with LocalRedisCluster(replicas=1) as cluster:
        yield cluster


def replicate_cluster(cluster: LocalRedisCluster) -> None:
    """Wait until every primary's replica holds every write made so far (one marker write
    per primary, acknowledged by WAIT: the earlier writes are in the stream before it)."""
    for port in cluster.primary_ports():
        marker = next(
            f"marker-{n}"
            for n in range(100_000)
            if cluster.port_of_slot(key_slot(f"marker-{n}".encode())) == port
        )
        with redis.Redis(port=port, decode_responses=True) as primary:
            primary.set(marker, "1")
            assert primary.execute_command("WAIT", 1, 5000) >= 1


async def test_cluster_primary_killed_mid_load_fails_over_by_itself(
    replicated_cluster: LocalRedisCluster,
) -> None:
    config = topology_config(replicated_cluster.url, redis_prefix="failover:")
    bans = [f"203.0.113.{n}" for n in range(1, 31)]
    async with Guard(config) as guard, Guard(config) as observer:
        for ip in bans:
            assert await guard.ip_bans.ban_ip(ip, 600, reason="before the failover")
        replicate_cluster(replicated_cluster)
        slot = key_slot(build_key("failover:", "banned_ips", bans[0], cluster=True).encode())
        old_port = -1

        async def load(index: int) -> None:
            nonlocal old_port
            for step in range(6):
                if index == 0 and step == 1:
                    old_port = replicated_cluster.kill_primary_of(slot)
                client_ip = f"198.51.100.{index % 250}"
                assert isinstance(await guard.ip_bans.is_ip_banned(client_ip), bool)
                verdict = await guard.rate_limiter.check(client_ip, limit=10_000, window=60)
                assert isinstance(verdict.allowed, bool)
                assert await guard.ip_bans.is_ip_banned(bans[index % len(bans)])

        await run_async_workers(ASYNC_WORKERS, load)
        new_port = replicated_cluster.wait_for_failover(slot, old_port)
        assert new_port != old_port
        # shared mode comes back by itself: a reader without local state sees the ban in
        # Redis again once the client has found the promoted replica
        reader = IPBanManager(config, observer.redis)
        await wait_until_shared(observer)  # its invalidation subscription saw the failover too
        for _ in range(400):
            if await reader.is_ip_banned(bans[0]) and guard.redis.available:
                break
            assert await guard.ip_bans.is_ip_banned(bans[0])
            await async_sleep(0.025)
        assert guard.redis.available
        for ip in bans:
            assert await reader.is_ip_banned(ip)
        after = "203.0.113.200"
        assert await guard.ip_bans.ban_ip(after, 600, reason="after the failover")
        assert await IPBanManager(config, observer.redis).is_ip_banned(after)


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    """A Cluster speaking TLS only (clients, bus, replication), with client certificates."""
    pki = make_test_pki(tmp_path_factory.mktemp("cluster-pki"))
    tls = ServerTLS(
        ca_file=pki.ca_file,
        cert_file=pki.server_cert,
        key_file=pki.server_key,
        client_cert_file=pki.client_cert,
        client_key_file=pki.client_key,
    )
    with LocalRedisCluster(tls=tls) as cluster:
        yield cluster


@pytest.mark.tls_server
async def test_cluster_over_tls(tls_cluster: LocalRedisCluster) -> None:
    assert tls_cluster.url.startswith("rediss+cluster://")
    config = SecurityConfig(redis_url=tls_cluster.url)
    manager = RedisManager(config)
    await manager.initialize()
    try:
        entries = {ip: ("1", 600) for ip in IDENTIFIERS[:12]}
        assert await manager.set_many("banned_ips", entries) is True
        assert await manager.get_many("banned_ips", IDENTIFIERS[:12]) == ["1"] * 12
        assert len(await manager.keys("banned_ips:*") or []) == 12
        limiter = RateLimitManager(config, manager)
        assert [(await limiter.check("tls", limit=2, window=60)).allowed for _ in range(3)] == [
            True,
            True,
            False,
        ]
        assert manager.breaker_snapshot()["times_opened"] == 0
    finally:
        await manager.close()
    # the same nodes without TLS, or without our CA, are refused: a 503, not a hang
    plain = tls_cluster.url.replace("rediss+cluster://", "redis+cluster://").split("?")[0]
    for url in (plain, tls_cluster.url.split("?")[0]):
        refused = RedisManager(topology_config(url))
        with pytest.raises(GuardRedisError):
            await refused.initialize()
        await refused.close()


@pytest.mark.tls_server
async def test_sentinel_over_tls_follows_a_failover(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Sentinels, master and replica speak TLS only; the client verifies all of them."""
    pki = make_test_pki(tmp_path_factory.mktemp("sentinel-pki"))
    tls = ServerTLS(
        ca_file=pki.ca_file,
        cert_file=pki.server_cert,
        key_file=pki.server_key,
        client_cert_file=pki.client_cert,
        client_key_file=pki.client_key,
    )
    with LocalRedisSentinel(service="guard-tls", tls=tls) as topology:
        assert topology.url.startswith("rediss+sentinel://")
        manager = RedisManager(topology_config(topology.url))
        await manager.initialize()
        try:
            assert await manager.set_key("ns", "before", "1") is True
            old_port = topology.master_port()
            assert topology.failover() != old_port
            assert await manager.set_key("ns", "after", "2") is True
            assert await manager.get_key("ns", "before") == "1"
            assert manager.breaker_snapshot()["times_opened"] == 0
        finally:
            await manager.close()
        # the sentinels without TLS: refused with a 503
        plain = topology.url.replace("rediss+", "redis+").split("?")[0]
        refused = RedisManager(topology_config(plain))
        with pytest.raises(GuardRedisError):
            await refused.initialize()
        await refused.close()
