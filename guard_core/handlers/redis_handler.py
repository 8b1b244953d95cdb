"""`RedisManager`: connection lifecycle, namespaced key operations and fault-tolerant wrappers.

Every Redis command guard-core sends goes through a manager, so connection handling,
error wrapping and events live here and nowhere else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from guard_core.circuit_breaker import Admission, BreakerState, CircuitBreaker
from guard_core.exceptions import GuardRedisError, RedisUnavailableError
from guard_core.keys import build_key, build_pattern, validate_ttl, validate_value
from guard_core.logs import get_logger
from guard_core.lua_scripts import LuaScript
from guard_core.models import SecurityConfig, SecurityEvent
from guard_core.primitives import (
    AsyncLock,
    async_cancel_shield,
    async_loop_token,
    async_require_asyncio,
)
from guard_core.redaction import Redactor, escape_control, redact_url

from .redis_client import build_client

#: Keys asked of Redis per SCAN step, and keys removed per UNLINK.
SCAN_COUNT = 1000
DELETE_BATCH = 500

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
        self._agent_failing = False
        self._server_run_id: str | None = None
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
            self._closed = True
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
        if self._closed:
            await self._send_redis_event(
                event_type="redis_error",
                action_taken="operation_failed",
                reason="Attempted to use closed Redis connection",
                error_type="connection_closed",
            )
            raise GuardRedisError(503, "Redis connection closed")
        async_require_asyncio()
        admission = self._breaker.admit()
        if admission is Admission.REJECT:
            raise RedisUnavailableError(503, "Redis unavailable (circuit open)")
        self._forget_client_of_another_loop()
        try:
            if self._redis is None:
                await self.initialize()
            conn = self._redis
            if conn is None:
                await self._send_redis_event(
                    event_type="redis_error",
                    action_taken="operation_failed",
                    reason="Redis connection is None after initialization",
                    error_type="initialization_failed",
                )
                raise GuardRedisError(503, "Redis connection failed")
            try:
                yield conn
            except _CONNECTION_ERRORS as exc:
                reason = self._describe(exc)
                await self._record_failure(f"Redis operation failed: {reason}")
                await self._send_redis_event(
                    event_type="redis_error",
                    action_taken="operation_failed",
                    reason=f"Redis operation failed: {reason}",
                    error_type="operation_error",
                )
                raise GuardRedisError(503, "Redis connection failed") from exc
            except RedisError:
                await self._record_success()  # Redis answered, with an error reply
                raise
            await self._record_success()
        finally:
            self._breaker.abandoned(admission)  # a probe cancelled before any answer

    async def safe_operation(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Return `func(conn, *args, **kwargs)` awaited; failures become `GuardRedisError(503)`."""
        if not self.config.enable_redis:
            return None
        async_require_asyncio()  # outside the try: not a Redis failure
        # -- lean path (speed issue): while the breaker is closed and the client is ready on
        # this event loop, call straight through, without `get_connection()`. A failure is
        # raised again through the full path below (`func` is not called again), which
        # records and reports it as if it had happened there.
        client = self._redis
        if (
            client is not None
            and self._breaker.state is BreakerState.CLOSED
            and not self._closed
            and self._client_loop is async_loop_token()
        ):
            try:
                return await func(client, *args, **kwargs)
            except Exception as exc:
                func, args, kwargs = _Reraise(exc, func), (), {}
        # -- end of the lean path
        try:
            async with self.get_connection() as conn:
                return await func(conn, *args, **kwargs)
        except Exception as exc:
            if isinstance(exc, RedisUnavailableError):
                raise  # failing fast: the breaker's transition was logged and reported once
            if isinstance(exc, GuardRedisError) and self._closed:
                raise  # "Redis connection closed", reported by get_connection()
            reason = self._describe(exc)
            if not isinstance(exc, GuardRedisError):
                self.logger.error("Redis operation failed: %s", reason)
            await self._send_redis_event(
                event_type="redis_error",
                action_taken="safe_operation_failed",
                reason=f"Redis safe operation failed: {reason}",
                error_type="safe_operation_error",
                function_name=getattr(func, "__name__", "unknown"),
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
        return build_key(self.config.redis_prefix, namespace, key)

    async def get_key(self, namespace: str, key: str) -> Any:
        """The value at `{prefix}{namespace}:{key}`, or `None` when absent."""
        full_key = self._key(namespace, key)
        if not self.config.enable_redis:
            return None
        return await self.safe_operation(Redis.get, full_key)

    async def get_many(self, namespace: str, keys: Sequence[str]) -> list[Any] | None:
        """Values of several keys of one namespace in one round trip (MGET); `None` for absent."""
        full_keys = [self._key(namespace, key) for key in keys]
        if not self.config.enable_redis:
            return None
        if not full_keys:
            return []
        result: list[Any] = await self.safe_operation(Redis.mget, full_keys)
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
            result = await self.safe_operation(Redis.set, full_key, value)
        else:
            result = await self.safe_operation(Redis.set, full_key, value, ex=ttl)
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
        return bool(await self.safe_operation(Redis.exists, full_key))

    async def delete(self, namespace: str, key: str) -> int | None:
        """Delete one key; returns how many were deleted (0 or 1)."""
        full_key = self._key(namespace, key)
        if not self.config.enable_redis:
            return None
        return int(await self.safe_operation(Redis.delete, full_key))

    async def keys(self, pattern: str) -> list[str] | None:
        """Full names (prefix included) of the keys matching `{prefix}{pattern}`, via SCAN."""
        full_pattern = build_pattern(self.config.redis_prefix, pattern)
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
        full_pattern = build_pattern(self.config.redis_prefix, pattern)
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

        async def _run_script(conn: Redis) -> Any:
            try:
                return await conn.evalsha(script.sha, len(full_keys), *full_keys, *args)
            except NoScriptError:
                await conn.script_load(script.source)
                return await conn.evalsha(script.sha, len(full_keys), *full_keys, *args)

        return await self.safe_operation(_run_script)

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
        previous, self._server_run_id = self._server_run_id, run_id
        if previous is not None and previous != run_id:
            self.restarts += 1
            self.logger.warning(
                "Redis restarted (its data may be gone): subsystems write their state again"
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
            if not self._agent_failing:
                self._agent_failing = True
                self.logger.warning(
                    "Agent handler rejected an event; events are dropped until it recovers: %s",
                    self._describe(exc),
                )
            return
        if self._agent_failing:
            self._agent_failing = False
            self.logger.warning("Agent handler accepts events again")


class _Reraise:
    """Raises, where `func` would run, the failure `func` met on the lean path (named after
    `func` in events)."""

    def __init__(self, exc: Exception, func: Callable[..., Any]) -> None:
        self.exc = exc
        self.__name__ = getattr(func, "__name__", "unknown")

    async def __call__(self, conn: Any) -> Any:
        raise self.exc


def _run_id(info: object) -> str | None:
    text = info.decode() if isinstance(info, bytes) else str(info)
    for line in text.splitlines():
        if line.startswith("run_id:"):
            return line.partition(":")[2].strip()
    return None


async def call_or_none(redis: RedisManager | None, call: Callable[[RedisManager], Any]) -> Any:
    """`call(redis)`'s result, or `None` when there is no manager, Redis is disabled, or the
    call failed (the manager has logged and reported it): subsystems then answer from memory.
    """
    if redis is None:
        return None
    try:
        return await call(redis)
    except GuardRedisError:
        return None


#: The class itself (not an instance), so adapters can build a manager later from a config.
redis_handler = RedisManager
