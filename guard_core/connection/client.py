"""The one place a Redis client is built from a `SecurityConfig`.

`redis_url` names one server, a Sentinel-managed master or a Cluster (see
`guard_core._shared.connection.redis_url`); each gets the same bounded timeouts and the
same retry policy: a dropped connection is retried with jittered backoff, a timeout never is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import AbstractConnection, SSLConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ClusterDownError, ConnectionError, ResponseError, SlotNotCoveredError

from guard_core._shared.connection.redis_url import RedisTarget, Topology, parse_redis_url
from guard_core.models import SecurityConfig

_TLS_DEFAULTS: dict[str, Any] = {"ssl_cert_reqs": "required", "ssl_check_hostname": True}


def build_client(
    config: SecurityConfig, on_connect: Callable[[AbstractConnection], Any] | None = None
) -> Redis:
    """A client over a bounded pool with bounded timeouts and retries.

    `on_connect(connection)`, when given, runs on every new connection in place of
    redis-py's handshake and must call `connection.on_connect()` itself (standalone and
    Sentinel; a Cluster client does not offer that hook).

    A `rediss://` URL connects with TLS, verifying the server's certificate and hostname;
    the CA and an optional client certificate are named in its query string, e.g.
    `rediss://user:password@host:6380/0?ssl_ca_certs=/etc/ssl/redis-ca.pem` (redis-py
    passes `ssl_*` query parameters on; they take precedence over the defaults here).

    A Cluster client is a `RedisCluster`: it offers the commands guard-core sends with the
    signatures of `Redis`, and is typed as one here.
    """
    if config.redis_url is None:
        raise ValueError("redis_url is None: no Redis server to connect to")
    target = parse_redis_url(config.redis_url)
    if target.topology is Topology.SENTINEL:
        return _sentinel_client(config, target, on_connect)
    if target.topology is Topology.CLUSTER:
        return cast(Redis, _cluster_client(config, target))
    tls: dict[str, Any] = {}
    if target.tls:
        # Older redis-py releases skip the hostname check by default: ask for it.
        tls = dict(_TLS_DEFAULTS)
    # A plain pool: the manager bounds what takes connections (commands in flight, the
    # subscription, the auto-pipeline's kept connections) to `redis_max_connections`, so
    # the pool never runs short, and its get and release cost half a blocking pool's.
    pool = ConnectionPool.from_url(
        config.redis_url,
        decode_responses=True,
        max_connections=config.redis_max_connections,
        socket_connect_timeout=config.redis_connect_timeout,
        socket_timeout=config.redis_socket_timeout,
        retry=_retry(config),
        redis_connect_func=on_connect,
        **tls,
    )
    return Redis.from_pool(pool)


def _retry(config: SecurityConfig) -> Retry:
    return Retry(
        ExponentialWithJitterBackoff(
            cap=config.redis_retry_backoff_cap, base=config.redis_retry_backoff_base
        ),
        config.redis_retries,
        # Retry a dropped connection, never a timeout: a hung Redis costs one timeout.
        supported_errors=(ConnectionError,),
    )


def tls_options(target: RedisTarget) -> dict[str, Any]:
    """redis-py keywords for the URL's TLS settings (none without TLS)."""
    if not target.tls:
        return {}
    options: dict[str, Any] = {"ssl": True, **_TLS_DEFAULTS}
    for name, value in target.options:
        if name.startswith("ssl_"):
            if name == "ssl_check_hostname":
                options[name] = value.lower() in ("1", "true", "yes", "on")
            else:
                options[name] = value
    return options


class SentinelMasterConnection(SentinelManagedConnection):
    """A connection to the master that asks the sentinels for its address on every
    (re)connect. redis-py does so when the pool hands a connection out, but a retry within
    one command reconnects to the address it had: after a failover that is the demoted
    master, whose READONLY reply would then use up the retries."""

    _address_fresh = False

    async def connect_to(self, address: Any) -> None:
        parent: Any = super()  # untyped in redis-py
        self._address_fresh = True
        try:
            await parent.connect_to(address)
        finally:
            self._address_fresh = False

    async def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        parent: Any = super()
        if not self._address_fresh and self.connection_pool.is_master:
            self.host, self.port = await self.connection_pool.get_master_address()
        await parent.connect_check_health(*args, **kwargs)

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        """A reply that cannot be read (e.g. bytes that are not UTF-8) drops the connection,
        as on a single server: redis-py's sync Sentinel connection would otherwise keep the
        rest of that reply and hand it to the next command."""
        kwargs.setdefault("disconnect_on_error", True)
        parent: Any = super()
        return await parent.read_response(*args, **kwargs)


class SentinelMasterSSLConnection(SentinelMasterConnection, SSLConnection):
    """`SentinelMasterConnection` over TLS."""


class BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """A pool of connections to the master a Sentinel names, which waits (at most
    `timeout` seconds) for a free connection rather than failing when all are in use."""


class SentinelMasterClient(Redis):
    """The master's client; closing it also closes the connections to the sentinels."""

    sentinel_manager: Any = None  # the redis-py Sentinel (partly untyped in the sync face)

    async def aclose(self, *args: Any, **kwargs: Any) -> None:
        try:
            await super().aclose(*args, **kwargs)
        finally:
            manager, self.sentinel_manager = self.sentinel_manager, None
            for client in manager.sentinels if manager is not None else ():
                await client.aclose()


def _sentinel_client(
    config: SecurityConfig,
    target: RedisTarget,
    on_connect: Callable[[AbstractConnection], Any] | None,
) -> Redis:
    """The master of `target.service_name`, found through the sentinels and found again
    after a failover (a READONLY reply from a demoted master drops the connection, and the
    retry asks the sentinels again)."""
    tls = tls_options(target)
    sentinel_kwargs: dict[str, Any] = {
        "socket_connect_timeout": config.redis_connect_timeout,
        "socket_timeout": config.redis_socket_timeout,
        "decode_responses": True,
        # redis-py's default would retry each sentinel 3 times with backoff up to 10 s
        "retry": _retry(config),
        **tls,
    }
    sentinel_username = target.option("sentinel_username")
    sentinel_password = target.option("sentinel_password")
    if sentinel_username:
        sentinel_kwargs["username"] = sentinel_username
    if sentinel_password:
        sentinel_kwargs["password"] = sentinel_password
    sentinel_class: Any = Sentinel  # untyped in redis-py
    sentinel = sentinel_class(list(target.nodes), sentinel_kwargs=sentinel_kwargs)
    assert target.service_name is not None  # parse_redis_url demands one
    master_tls = {name: value for name, value in tls.items() if name != "ssl"}
    client = sentinel.master_for(
        target.service_name,
        redis_class=SentinelMasterClient,
        connection_pool_class=BlockingSentinelPool,
        connection_class=SentinelMasterSSLConnection if target.tls else SentinelMasterConnection,
        decode_responses=True,
        max_connections=config.redis_max_connections,
        timeout=config.redis_pool_timeout,
        socket_connect_timeout=config.redis_connect_timeout,
        socket_timeout=config.redis_socket_timeout,
        retry=_retry(config),
        redis_connect_func=on_connect,
        username=target.username,
        password=target.password,
        **master_tls,
    )
    master = cast(SentinelMasterClient, client)  # master_for returns redis_class
    master.sentinel_manager = sentinel
    return master


class GuardRedisCluster(RedisCluster):
    """redis-py's Cluster client, retrying a dropped connection or a cluster that is
    re-forming, but never a timeout (redis-py's own list includes timeouts)."""

    ERRORS_ALLOW_RETRY = (  # type: ignore[assignment]  # a narrower tuple on purpose
        ConnectionError,
        ClusterDownError,
        SlotNotCoveredError,
    )


def _cluster_client(config: SecurityConfig, target: RedisTarget) -> GuardRedisCluster:
    """A Cluster client: seeds from the URL, the other nodes and the slot map discovered;
    MOVED and ASK redirections are followed by redis-py."""
    node_class: Any = ClusterNode  # untyped in the sync face
    return GuardRedisCluster(
        startup_nodes=[node_class(host, port) for host, port in target.nodes],
        decode_responses=True,
        max_connections=config.redis_max_connections,
        socket_connect_timeout=config.redis_connect_timeout,
        socket_timeout=config.redis_socket_timeout,
        retry=Retry(
            ExponentialWithJitterBackoff(
                cap=config.redis_retry_backoff_cap, base=config.redis_retry_backoff_base
            ),
            config.redis_retries,
        ),
        username=target.username,
        password=target.password,
        **tls_options(target),
    )


class ServerProcesses:
    """Which server process (its `run_id`) answered last at each address."""

    def __init__(self) -> None:
        self._run_ids: dict[str, str] = {}

    async def handshake(self, connection: AbstractConnection) -> bool:
        """Finish a new connection's handshake and note who answers: True when another
        process than last time answers at this address (a restart; its data may be gone)."""
        conn: Any = connection  # the sync face's connection methods are untyped
        await conn.on_connect()
        try:
            await conn.send_command("INFO", "server")
            info = await conn.read_response()
        except ResponseError:  # e.g. an ACL user without INFO: restarts go unnoticed
            return False
        run_id = _run_id(info)
        if run_id is None:
            return False
        # per address: a Sentinel failover moves to another server, which is no restart
        address = f"{getattr(conn, 'host', '')}:{getattr(conn, 'port', '')}"
        previous = self._run_ids.get(address)
        self._run_ids[address] = run_id
        return previous is not None and previous != run_id


def _run_id(info: object) -> str | None:
    text = info.decode() if isinstance(info, bytes) else str(info)
    for line in text.splitlines():
        if line.startswith("run_id:"):
            return line.partition(":")[2].strip()
    return None
