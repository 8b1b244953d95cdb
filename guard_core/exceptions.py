"""Exceptions shared by the async (`guard_core`) and sync (`guard_core_sync`) faces."""

from __future__ import annotations


class GuardCoreError(Exception):
    """Base class of every error guard-core raises on purpose."""


class GuardRedisError(GuardCoreError):
    """Redis could not serve a request; `status_code` is 503 for unavailability."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(status_code, detail)
        self.status_code = status_code
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.status_code}: {self.detail}"


class RedisUnavailableError(GuardRedisError):
    """Redis is known to be down (circuit breaker open): failed fast, without network I/O."""


class RedisBusyError(GuardRedisError):
    """Every connection of the manager's pool stayed in use, none coming free for the
    slot wait (`max(redis_pool_timeout, redis_socket_timeout)`): the caller gave up
    waiting. Redis itself answers, so this is no outage: the circuit breaker does not hear
    of it."""


class UnsupportedBackendError(GuardCoreError, RuntimeError):
    """Redis was asked for under an async library it cannot run on (redis.asyncio needs
    asyncio; under trio, use `enable_redis=False`). Raised before any connection attempt, so
    no Redis outage is recorded or reported."""
