"""The one place a Redis client is built from a `SecurityConfig`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError

from guard_core.models import SecurityConfig


def build_client(
    config: SecurityConfig, on_connect: Callable[[AbstractConnection], Any] | None = None
) -> Redis:
    """A client over a bounded, blocking pool with bounded timeouts and retries.

    `on_connect(connection)`, when given, runs on every new connection in place of
    redis-py's handshake and must call `connection.on_connect()` itself.

    A `rediss://` URL connects with TLS, verifying the server's certificate and hostname;
    the CA and an optional client certificate are named in its query string, e.g.
    `rediss://user:password@host:6380/0?ssl_ca_certs=/etc/ssl/redis-ca.pem` (redis-py
    passes `ssl_*` query parameters on; they take precedence over the defaults here).
    """
    if config.redis_url is None:
        raise ValueError("redis_url is None: no Redis server to connect to")
    retry = Retry(
        ExponentialWithJitterBackoff(
            cap=config.redis_retry_backoff_cap, base=config.redis_retry_backoff_base
        ),
        config.redis_retries,
        # Retry a dropped connection, never a timeout: a hung Redis costs one timeout.
        supported_errors=(ConnectionError,),
    )
    tls: dict[str, Any] = {}
    if urlsplit(config.redis_url).scheme == "rediss":
        # Older redis-py releases skip the hostname check by default: ask for it.
        tls = {"ssl_cert_reqs": "required", "ssl_check_hostname": True}
    pool = BlockingConnectionPool.from_url(
        config.redis_url,
        decode_responses=True,
        max_connections=config.redis_max_connections,
        timeout=config.redis_pool_timeout,
        socket_connect_timeout=config.redis_connect_timeout,
        socket_timeout=config.redis_socket_timeout,
        retry=retry,
        redis_connect_func=on_connect,
        **tls,
    )
    return Redis.from_pool(pool)
