"""`RedisManager`: connection lifecycle, namespaced key operations and fault-tolerant wrappers.

Every Redis command guard-core sends goes through a manager, so connection handling,
error wrapping and events live here and nowhere else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, NoReturn

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from guard_core._shared.concurrency import (
    AsyncLock,
    async_cancel_shield,
    async_loop_token,
    async_require_asyncio,
)
from guard_core._shared.connection.auto_pipeline import (
    AsyncAutoPipeline,
    connections_for_subscription,
)
from guard_core._shared.connection.circuit_breaker import Admission, BreakerState
from guard_core._shared.connection.redis_url import Topology, topology_of
from guard_core._shared.connection.slots import AsyncSlots
from guard_core._shared.logs import get_logger
from guard_core._shared.redaction import Redactor, escape_control, redact_url
from guard_core.exceptions import GuardRedisError, RedisBusyError, RedisUnavailableError
from guard_core.models import SecurityConfig, SecurityEvent

from .availability import Availability
from .client import ServerProcesses, build_client
from .events import EventSink
from .operations import KeyOperations

_CONNECTION_ERRORS = (
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    TimeoutError,
    AttributeError,
)


class RedisManager(KeyOperations):
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
        #: Operations that failed (a `GuardRedisError` raised), since made: a tool that asks
        #: a question tells a failed answer from a true one by it.
        self.failed_operations = 0
        #: Where events go (to `agent_handler`), with the request check's decisions.
        self.events = EventSink(self._redactor, lambda: self.agent_handler)
        self._availability = Availability(config, self.events)
        self._breaker = self._availability.breaker
        #: Objects other layers keep per manager (the storage layer's stores), so that they
        #: live and die with it.
        self.attachments: dict[object, object] = {}
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
        self._pipeline: AsyncAutoPipeline | None = None
        self._servers = ServerProcesses()
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
            await self._availability.failed("Redis URL is None, skipping connection")
            return
        # events go out after the lock: an agent may well write through this manager
        if failure is not None:
            reason = self._describe(failure)
            await self._availability.failed(f"Redis connection failed: {reason}")
            await self.events.redis_event(
                event_type="redis_error",
                action_taken="connection_failed",
                reason=f"Redis connection failed: {reason}",
                redis_url=redact_url(self.config.redis_url),
                error_type="connection_error",
            )
            raise GuardRedisError(503, "Redis connection failed") from failure
        await self._availability.succeeded()
        self.logger.info("Redis connection established")
        await self.events.redis_event(
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
            await self.events.redis_event(
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
                await self._availability.succeeded()  # Redis answered, with an error reply
                raise
            finally:
                if holding:
                    slots.release()
            await self._availability.succeeded()
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
                    await self._availability.succeeded()  # Redis answered, with an error reply
                    raise
                if self._breaker.state is not BreakerState.CLOSED:
                    await self._availability.succeeded()
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
        await self._availability.failed(reason)
        await self._operation_error(reason, "operation_error", "Redis connection failed", exc)

    async def _operation_error(
        self, reason: str, error_type: str, message: str, cause: BaseException | None = None
    ) -> NoReturn:
        """Report an operation that failed (an `operation_failed` event), then raise a 503."""
        await self.events.redis_event(
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
            self._availability.gave_up_waiting(exc)
            raise exc
        if isinstance(exc, GuardRedisError) and self._closed:
            raise exc  # "Redis connection closed", reported already
        reason = self._describe(exc)
        if not isinstance(exc, GuardRedisError):
            self.logger.error("Redis operation failed: %s", reason)
        await self.events.redis_event(
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
        return self._availability.available

    @property
    def recoveries(self) -> int:
        """Times Redis came back after being unavailable: subsystems then write what they
        could not write meanwhile."""
        return self._availability.recoveries

    def breaker_snapshot(self) -> dict[str, Any]:
        """The circuit breaker's state and counters (for health reports)."""
        return self._breaker.snapshot()

    # -- internals ---

    def _build_client(self, config: SecurityConfig) -> Redis:
        return build_client(config, on_connect=self._on_new_connection)

    async def _on_new_connection(self, connection: AbstractConnection) -> None:
        """Handshake; a new server process at a known address is a restart."""
        if await self._servers.handshake(connection):
            self.restarts += 1
            self.logger.warning(
                "Redis restarted (its data may be gone): subsystems write their state again"
            )

    async def send_event(self, event: SecurityEvent) -> None:
        """Offer `event` to the agent handler, if any (never raises)."""
        await self.events.send(event)

    def _describe(self, exc: BaseException) -> str:
        return escape_control(self._redactor.scrub(f"{type(exc).__name__}: {exc}"))

    async def _discard(self, client: Redis) -> None:
        with async_cancel_shield():
            try:
                await client.aclose()
            except Exception as exc:
                self.logger.debug("Ignoring error while closing a client: %s", self._describe(exc))


#: The class itself (not an instance), so adapters can build a manager later from a config.
redis_handler = RedisManager
