"""`RedisManager`: connection lifecycle, namespaced key operations and fault-tolerant wrappers.

Every Redis command guard-core sends goes through a manager, so connection handling,
error wrapping and events live here and nowhere else.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, NoReturn

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from guard_core._shared.concurrency import (
    AsyncLock,
    AsyncSlots,
    async_cancel_shield,
    async_loop_token,
    async_require_asyncio,
)
from guard_core._shared.connection.auto_pipeline import (
    AsyncAutoPipeline,
    connections_for_subscription,
)
from guard_core._shared.connection.circuit_breaker import Admission, BreakerState, CircuitBreaker
from guard_core._shared.connection.redis_url import Topology, topology_of
from guard_core._shared.keys import (
    build_key,
    build_pattern,
    key_in_namespace,
    validate_ttl,
    validate_value,
)
from guard_core._shared.logs import StateWarning, get_logger
from guard_core._shared.redaction import Redactor, escape_control, redact_url
from guard_core._shared.storage.lua_scripts import LuaScript
from guard_core.exceptions import GuardRedisError, RedisBusyError, RedisUnavailableError
from guard_core.models import SecurityConfig, SecurityEvent

from .client import build_client

#: Keys asked of Redis per SCAN step, and keys removed per UNLINK.
SCAN_COUNT = 1000
DELETE_BATCH = 500
#: Seconds between two WARNINGs about callers that gave up waiting for a connection.
BUSY_WARNING_INTERVAL = 60.0

_CONNECTION_ERRORS = (
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    TimeoutError,
    AttributeError,
)


class RedisManager:
    """Shares guard-core state through Redis; every method returns `None` when Redis is disabled.

    Each construction makes a new, independent manager. `client_factory` replaces the
    default client builder (tests pass a fakeredis client through it).

    `redis_url` may name one server, a Sentinel-managed master or a Cluster; the methods
    behave the same on each. In Cluster mode keys take the hash-tag layout of
    `guard_core._shared.keys` (`{prefix}{namespace}:{{key}}`), multi-key reads are split by slot,
    and `keys()`/`delete_pattern()` scan every primary.
    """

    agent_handler: Any = None

    def __init__(
        self,
        config: SecurityConfig,
        *,
        client_factory: Callable[[SecurityConfig], Redis] | None = None,
    ) -> None:
        self.config = config
        self.logger = get_logger("redis")
        self.agent_handler = None
        self._client_factory = client_factory or self._build_client
        self._redis: Redis | None = None
        self._client_loop: object = None  # the event loop the client was made on (async face)
        self._closed = False
        self._connection_lock = AsyncLock()
        self._redactor = Redactor.for_url(config.redis_url)
        self._breaker = CircuitBreaker(
            config.redis_breaker_base_delay, config.redis_breaker_max_delay
        )
        #: Operations that failed (a `GuardRedisError` raised), since made: a tool that asks
        #: a question tells a failed answer from a true one by it.
        self.failed_operations = 0
        self._agent_state = StateWarning(self.logger)
        #: Objects other layers keep per manager (the storage layer's stores), so that they
        #: live and die with it.
        self.attachments: dict[object, object] = {}
        #: Cluster mode: keys in the hash-tag layout.
        self.cluster = topology_of(config.redis_url) is Topology.CLUSTER
        # Commands in flight are bounded here, not by the pool (which then never waits):
        # a caller that waited for a slot while Redis hung finds the breaker open and fails
        # fast, so a hung call costs one timeout whatever the concurrency. (A Cluster
        # client's per-node pools would refuse, rather than wait, past their size.) Out of
        # `redis_max_connections`, the invalidation subscription holds one connection and
        # the auto-pipeline keeps a few for its round trips; the rest are the slots.
        # Callers queue for a slot first come, first served, and give up only when none came
        # free for a whole wait (no shorter than a reply may take): under load the queue
        # moves, and a caller that still gives up gets `RedisBusyError`, no outage.
        max_connections = config.redis_max_connections
        self._kept = AsyncAutoPipeline.connections_kept(max_connections, batching=not self.cluster)
        self._slots = AsyncSlots(
            max(1, max_connections - self._kept - connections_for_subscription(max_connections)),
            max(config.redis_pool_timeout, config.redis_socket_timeout),
        )
        self._busy_warned_at: float | None = None
        self._pipeline: AsyncAutoPipeline | None = None
        #: run_id of the server process last seen at each address.
        self._server_run_ids: dict[str, str] = {}
        #: Times Redis came back after being unavailable: subsystems then write what they
        #: could not write meanwhile.
        self.recoveries = 0
        #: Times a new connection found a different server process (a restart, data maybe
        #: gone): subsystems then write again all the state they hold.
        self.restarts = 0

    # -- lifecycle -------------------------------------------------------------------

    async def initialize(self) -> None:
        """Connect and ping; raises `GuardRedisError(503)` when Redis cannot be reached."""
        if self._closed or not self.config.enable_redis:
            self._redis = None
            return
        async_require_asyncio()  # before any attempt: a wrong backend is no Redis outage
        failures_before = self._breaker.failures
        failure: Exception | None = None
        self._forget_client_of_another_loop()
        async with self._connection_lock:
            if self._redis is not None or self._closed:
                return
            if self._breaker.failures != failures_before:
                # the caller before us in the queue just failed: do not try again at once
                raise RedisUnavailableError(503, "Redis unavailable (circuit open)")
            if self.config.redis_url is not None:
                client: Redis | None = None
                try:
                    client = self._client_factory(self.config)
                    await client.ping()
                    self._redis, client = client, None
                    self._client_loop = async_loop_token()
                except Exception as exc:
                    failure = exc
                finally:
                    if client is not None:
                        await self._discard(client)
        if self.config.redis_url is None:
            await self._record_failure("Redis URL is None, skipping connection")
            return
        # events go out after the lock: an agent may well write through this manager
        if failure is not None:
            reason = self._describe(failure)
            await self._record_failure(f"Redis connection failed: {reason}")
            await self._send_redis_event(
                event_type="redis_error",
                action_taken="connection_failed",
                reason=f"Redis connection failed: {reason}",
                redis_url=redact_url(self.config.redis_url),
                error_type="connection_error",
            )
            raise GuardRedisError(503, "Redis connection failed") from failure
        await self._record_success()
        self.logger.info("Redis connection established")
        await self._send_redis_event(
            event_type="redis_connection",
            action_taken="connection_established",
            reason="Redis connection successfully established",
            redis_url=redact_url(self.config.redis_url),
        )

    async def close(self) -> None:
        """Close the connection; later operations raise `GuardRedisError(503)`."""
        async with self._connection_lock:
            client, self._redis = self._redis, None
            pipeline, self._pipeline = self._pipeline, None
            self._closed = True
        if pipeline is not None:
            pipeline.close()  # round trips in flight end; none starts or is sent again
        if client is not None:
            await self._discard(client)
            self.logger.info("Redis connection closed")
            await self._send_redis_event(
                event_type="redis_connection",
                action_taken="connection_closed",
                reason="Redis connection closed gracefully",
            )

    # -- lifecycle: start again, new event loop (adapters' lifespans) ----------------

    def reopen(self) -> None:
        """Allow use again after `close()`: the next call connects anew."""
        self._closed = False

    def _forget_client_of_another_loop(self) -> None:
        """A client made on an event loop that is gone cannot be used on this one (its
        connections belong to that loop): drop it, so that the next call connects anew.
        Always a no-op in the sync face."""
        if self._redis is not None and self._client_loop is not async_loop_token():
            self._redis = None

    async def initialize_agent(self, agent_handler: Any) -> None:
        """Send events to `agent_handler.send_event(event)` from now on."""
        self.agent_handler = agent_handler

    @asynccontextmanager
    async def get_connection(self) -> AsyncIterator[Redis]:
        """Yield the client, connecting first if needed; connection errors become 503s.

        While the circuit breaker is open this fails fast with `RedisUnavailableError` (a
        `GuardRedisError(503)`) without touching the network; one caller at a time probes.
        """
        admission = await self._admit()
        try:
            conn = self._redis or await self._connect()
            slots, holding = self._slots, False
            try:
                holding = await slots.acquire()
                if not holding:
                    raise slots.busy()  # Redis answers others all along: no outage
                if admission is Admission.ALLOW and not self.available:
                    # Redis failed while this caller waited for a slot: fail fast too
                    raise RedisUnavailableError(503, "Redis unavailable (circuit open)")
                yield conn
            except _CONNECTION_ERRORS as exc:
                await self._connection_failed(exc)
            except RedisError:
                await self._record_success()  # Redis answered, with an error reply
                raise
            finally:
                if holding:
                    slots.release()
            await self._record_success()
        finally:
            self._breaker.abandoned(admission)  # a probe cancelled before any answer

    async def safe_operation(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Return `func(conn, *args, **kwargs)` awaited; failures become `GuardRedisError(503)`."""
        if not self.config.enable_redis:
            return None
        async_require_asyncio()  # outside the try: not a Redis failure
        try:
            async with self.get_connection() as conn:
                return await func(conn, *args, **kwargs)
        except Exception as exc:
            await self._operation_failed(exc, getattr(func, "__name__", "unknown"))

    async def _call(
        self, name: str, *command: Any, expected: type[RedisError] | None = None
    ) -> Any:
        """`command`'s reply, sent through the auto-pipeline (in the async face, with the
        commands other tasks issue meanwhile); failures become `GuardRedisError(503)` as in
        `safe_operation` (`name` stands for the function in events), except an `expected`
        error reply, raised as it is."""
        async_require_asyncio()  # outside the try: not a Redis failure
        try:
            admission = await self._admit()
            try:
                conn = self._redis or await self._connect()
                pipeline = self._pipeline
                if pipeline is None or pipeline.client is not conn:
                    pipeline = self._pipeline = AsyncAutoPipeline(
                        conn,
                        self._slots,
                        kept=self._kept,
                        timeout=self.config.redis_socket_timeout,
                        usable=lambda: self.available,
                    )
                try:
                    reply = await pipeline.execute(command, fail_fast=admission is Admission.ALLOW)
                except _CONNECTION_ERRORS as exc:
                    if self._closed:  # closed meanwhile: no outage to report
                        raise GuardRedisError(503, "Redis connection closed") from exc
                    await self._connection_failed(exc)
                except RedisError:
                    await self._record_success()  # Redis answered, with an error reply
                    raise
                if self._breaker.state is not BreakerState.CLOSED:
                    await self._record_success()
                return reply
            finally:
                if admission is not Admission.ALLOW:
                    self._breaker.abandoned(admission)  # a probe cancelled before any answer
        except Exception as exc:
            if expected is not None and isinstance(exc, expected):
                raise
            await self._operation_failed(exc, name)

    async def _admit(self) -> Admission:
        """May this call go to Redis now? Refused once closed; fails fast while the breaker
        is open (`RedisUnavailableError`); a client of an event loop that is gone is
        dropped first."""
        if self._closed:
            await self._refuse_closed()
        async_require_asyncio()
        admission = self._breaker.admit()
        if admission is Admission.REJECT:
            raise RedisUnavailableError(503, "Redis unavailable (circuit open)")
        self._forget_client_of_another_loop()
        return admission

    async def _connect(self) -> Redis:
        """The client, connecting first (`GuardRedisError(503)` when that fails)."""
        await self.initialize()
        conn = self._redis
        if conn is None:
            await self._operation_error(
                "Redis connection is None after initialization",
                "initialization_failed",
                "Redis connection failed",
            )
        return conn

    async def _refuse_closed(self) -> NoReturn:
        await self._operation_error(
            "Attempted to use closed Redis connection",
            "connection_closed",
            "Redis connection closed",
        )

    async def _connection_failed(self, exc: BaseException) -> NoReturn:
        """A connection error or timeout: the breaker hears of it, the caller gets a 503."""
        reason = f"Redis operation failed: {self._describe(exc)}"
        await self._record_failure(reason)
        await self._operation_error(reason, "operation_error", "Redis connection failed", exc)

    async def _operation_error(
        self, reason: str, error_type: str, message: str, cause: BaseException | None = None
    ) -> NoReturn:
        """Report an operation that failed (an `operation_failed` event), then raise a 503."""
        await self._send_redis_event(
            event_type="redis_error",
            action_taken="operation_failed",
            reason=reason,
            error_type=error_type,
        )
        raise GuardRedisError(503, message) from cause

    async def _operation_failed(self, exc: Exception, name: str) -> NoReturn:
        """Any failure of an operation, as the caller sees it: `GuardRedisError(503)`."""
        self.failed_operations += 1
        if isinstance(exc, RedisUnavailableError):
            raise exc  # failing fast: the breaker's transition was logged and reported once
        if isinstance(exc, RedisBusyError):
            self._gave_up_waiting(exc)
            raise exc
        if isinstance(exc, GuardRedisError) and self._closed:
            raise exc  # "Redis connection closed", reported already
        reason = self._describe(exc)
        if not isinstance(exc, GuardRedisError):
            self.logger.error("Redis operation failed: %s", reason)
        await self._send_redis_event(
            event_type="redis_error",
            action_taken="safe_operation_failed",
            reason=f"Redis safe operation failed: {reason}",
            error_type="safe_operation_error",
            function_name=name,
        )
        raise GuardRedisError(503, "Redis operation failed") from exc

    async def ping(self) -> bool | None:
        """Whether Redis answers a PING now (never raises); `None` when Redis is disabled."""
        if not self.config.enable_redis:
            return None
        try:
            return bool(await self.safe_operation(Redis.ping))
        except GuardRedisError:
            return False

    @property
    def available(self) -> bool:
        """False from a connection failure until Redis answers again."""
        return self._breaker.state is BreakerState.CLOSED

    def breaker_snapshot(self) -> dict[str, Any]:
        """The circuit breaker's state and counters (for health reports)."""
        return self._breaker.snapshot()

    # -- key operations ---------------------------------------------------------------

    def _key(self, namespace: str, key: str) -> str:
        return build_key(self.config.redis_prefix, namespace, key, cluster=self.cluster)

    def key_part(self, namespace: str, full_key: str) -> str:
        """The `key` part of a full key from `keys()`, in this manager's layout (ValueError
        when `full_key` is not a key of `namespace`)."""
        return key_in_namespace(self.config.redis_prefix, namespace, full_key, cluster=self.cluster)

    async def get_key(self, namespace: str, key: str) -> Any:
        """The value at `{prefix}{namespace}:{key}`, or `None` when absent."""
        full_key = self._key(namespace, key)
        if not self.config.enable_redis:
            return None
        return await self._call("get", "GET", full_key)

    async def get_many(self, namespace: str, keys: Sequence[str]) -> list[Any] | None:
        """Values of several keys of one namespace in one round trip (MGET); `None` for absent."""
        full_keys = [self._key(namespace, key) for key in keys]
        if not self.config.enable_redis:
            return None
        if not full_keys:
            return []
        if self.cluster:
            result: list[Any] = await self.safe_operation(_cluster_mget, full_keys)
        else:
            result = await self._call("_mget", "MGET", *full_keys)
        return result

    async def set_key(
        self, namespace: str, key: str, value: Any, ttl: int | None = None
    ) -> bool | None:
        """Store `value`, expiring after `ttl` seconds when given (SET with EX, as SETEX)."""
        full_key = self._key(namespace, key)
        value = validate_value(value)
        ttl = validate_ttl(ttl)
        if not self.config.enable_redis:
            return None
        if ttl is None:
            result = await self._call("set", "SET", full_key, value)
        else:
            result = await self._call("set", "SET", full_key, value, "EX", ttl)
        return bool(result)

    async def set_many(
        self, namespace: str, entries: Mapping[str, tuple[Any, int | None]]
    ) -> bool | None:
        """Store several keys of one namespace, `key -> (value, ttl)`, in one round trip
        (pipelined SETs); True when Redis took every one."""
        prepared = [
            (self._key(namespace, key), validate_value(value), validate_ttl(ttl))
            for key, (value, ttl) in entries.items()
        ]
        if not self.config.enable_redis:
            return None
        if not prepared:
            return True

        async def _set_many(conn: Redis) -> bool:
            async with conn.pipeline(transaction=False) as pipe:
                for full_key, value, ttl in prepared:
                    pipe.set(full_key, value, ex=ttl)
                results = await pipe.execute()
            return all(results)

        return bool(await self.safe_operation(_set_many))

    async def incr(self, namespace: str, key: str, ttl: int | None = None) -> int | None:
        """Increment and (when `ttl` is given) refresh the expiry in one MULTI/EXEC."""
        full_key = self._key(namespace, key)
        ttl = validate_ttl(ttl)
        if not self.config.enable_redis:
            return None

        async def _incr(conn: Redis) -> int:
            async with conn.pipeline(transaction=True) as pipe:
                pipe.incr(full_key)
                if ttl is not None:
                    pipe.expire(full_key, ttl)
                result = await pipe.execute()
            return int(result[0])

        return int(await self.safe_operation(_incr))

    async def exists(self, namespace: str, key: str) -> bool | None:
        """Whether the key exists."""
        full_key = self._key(namespace, key)
        if not self.config.enable_redis:
            return None
        return bool(await self._call("exists", "EXISTS", full_key))

    async def delete(self, namespace: str, key: str) -> int | None:
        """Delete one key; returns how many were deleted (0 or 1)."""
        full_key = self._key(namespace, key)
        if not self.config.enable_redis:
            return None
        return int(await self._call("delete", "DEL", full_key))

    async def keys(self, pattern: str) -> list[str] | None:
        """Full names (prefix included) of the keys matching `{prefix}{pattern}`, via SCAN
        (of every primary in Cluster mode; `key_part` reads a key part back)."""
        full_pattern = build_pattern(self.config.redis_prefix, pattern, cluster=self.cluster)
        if not self.config.enable_redis:
            return None

        async def _keys(conn: Redis) -> list[str]:
            found: dict[str, None] = {}
            async for key in conn.scan_iter(match=full_pattern, count=SCAN_COUNT):
                found[str(key)] = None
            return list(found)

        result: list[str] = await self.safe_operation(_keys)
        return result

    async def delete_pattern(self, pattern: str) -> int | None:
        """Delete every key matching `{prefix}{pattern}` (SCAN, then UNLINK in batches)."""
        full_pattern = build_pattern(self.config.redis_prefix, pattern, cluster=self.cluster)
        if not self.config.enable_redis:
            return None

        async def _delete_pattern(conn: Redis) -> int:
            deleted = 0
            batch: list[str] = []
            async for key in conn.scan_iter(match=full_pattern, count=SCAN_COUNT):
                batch.append(key)
                if len(batch) >= DELETE_BATCH:
                    deleted += int(await conn.unlink(*batch))
                    batch.clear()
            if batch:
                deleted += int(await conn.unlink(*batch))
            return deleted

        return int(await self.safe_operation(_delete_pattern))

    async def run_script(
        self,
        script: LuaScript,
        keys: Sequence[tuple[str, str]],
        args: Sequence[str | int | float],
    ) -> Any:
        """Run a Lua script by EVALSHA on `(namespace, key)` keys, loading it on NOSCRIPT."""
        full_keys = [self._key(namespace, key) for namespace, key in keys]
        if not self.config.enable_redis:
            return None
        command = ("EVALSHA", script.sha, len(full_keys), *full_keys, *args)
        try:
            return await self._call("_run_script", *command, expected=NoScriptError)
        except NoScriptError:
            pass  # the server does not have the script (yet, or any more): load it
        await self.safe_operation(Redis.script_load, script.source)  # every primary
        return await self._call("_run_script", *command)

    def full_key(self, namespace: str, key: str) -> str:
        """The full Redis name of `key` in `namespace`, as every method here builds it."""
        return self._key(namespace, key)

    # -- internals ---

    def _build_client(self, config: SecurityConfig) -> Redis:
        return build_client(config, on_connect=self._on_new_connection)

    async def _on_new_connection(self, connection: AbstractConnection) -> None:
        """Handshake, then note which server process answers (its run_id)."""
        conn: Any = connection  # the sync face's connection methods are untyped
        await conn.on_connect()
        try:
            await conn.send_command("INFO", "server")
            info = await conn.read_response()
        except ResponseError:  # e.g. an ACL user without INFO: restarts go unnoticed
            return
        run_id = _run_id(info)
        if run_id is None:
            return
        # per address: a Sentinel failover moves to another server, which is no restart
        address = f"{getattr(conn, 'host', '')}:{getattr(conn, 'port', '')}"
        previous = self._server_run_ids.get(address)
        self._server_run_ids[address] = run_id
        if previous is not None and previous != run_id:
            self.restarts += 1
            self.logger.warning(
                "Redis restarted (its data may be gone): subsystems write their state again"
            )

    def _gave_up_waiting(self, exc: RedisBusyError) -> None:
        """A caller found every connection in use for the whole wait: a WARNING at most
        every `BUSY_WARNING_INTERVAL` seconds (it may repeat for many callers at once)."""
        now = time.monotonic()
        last = self._busy_warned_at
        if last is not None and now - last < BUSY_WARNING_INTERVAL:
            self.logger.debug("Redis call gave up waiting for a connection: %s", exc.detail)
            return
        self._busy_warned_at = now
        self.logger.warning(
            "Redis calls gave up waiting for a connection (%s): Redis answers, but more "
            "callers than redis_max_connections=%d hold connections for long; not an outage",
            exc.detail,
            self.config.redis_max_connections,
        )

    def _describe(self, exc: BaseException) -> str:
        return escape_control(self._redactor.scrub(f"{type(exc).__name__}: {exc}"))

    async def _record_failure(self, reason: str) -> None:
        if self._breaker.failed(reason):
            self.logger.warning(
                "Redis unavailable, failing fast and probing again within %.1f s: %s",
                self.config.redis_breaker_base_delay,
                reason,
            )
            await self._send_redis_event(
                event_type="redis_error",
                action_taken="circuit_opened",
                reason=f"Redis unavailable: {reason}",
                redis_url=redact_url(self.config.redis_url),
                error_type="connection_lost",
            )
        else:
            self.logger.debug("Redis still unavailable: %s", reason)

    async def _record_success(self) -> None:
        if self._breaker.succeeded():
            self.recoveries += 1
            self.logger.warning("Redis available again")
            await self._send_redis_event(
                event_type="redis_connection",
                action_taken="connection_restored",
                reason="Redis answers again",
            )

    async def _discard(self, client: Redis) -> None:
        with async_cancel_shield():
            try:
                await client.aclose()
            except Exception as exc:
                self.logger.debug("Ignoring error while closing a client: %s", self._describe(exc))

    async def _send_redis_event(
        self, event_type: str, action_taken: str, reason: str, **metadata: Any
    ) -> None:
        agent = self.agent_handler
        if agent is None:
            return
        event = SecurityEvent(
            event_type=event_type,
            action_taken=action_taken,
            reason=escape_control(self._redactor.scrub(reason)),
            metadata={
                name: escape_control(self._redactor.scrub(value))
                if isinstance(value, str)
                else value
                for name, value in metadata.items()
            },
        )
        try:
            await agent.send_event(event)
        except Exception as exc:
            self._agent_state.failed(
                "Agent handler rejected an event; events are dropped until it recovers: %s",
                self._describe(exc),
            )
            return
        self._agent_state.worked("Agent handler accepts events again")


async def _cluster_mget(conn: Redis, full_keys: list[str]) -> list[Any]:
    """MGET of a Cluster, as pipelined GETs: keys of several identifiers span slots, and a
    single-key command follows MOVED/ASK even while its slot is being migrated (where a
    multi-key MGET would be refused with TRYAGAIN)."""
    async with conn.pipeline(transaction=False) as pipe:
        for full_key in full_keys:
            pipe.get(full_key)
        found: list[Any] = await pipe.execute()
    return found


def _run_id(info: object) -> str | None:
    text = info.decode() if isinstance(info, bytes) else str(info)
    for line in text.splitlines():
        if line.startswith("run_id:"):
            return line.partition(":")[2].strip()
    return None


#: The class itself (not an instance), so adapters can build a manager later from a config.
redis_handler = RedisManager
