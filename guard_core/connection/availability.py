"""`Availability`: whether Redis answers, as the circuit breaker sees it, and what is said
when that changes: one WARNING and one event when Redis becomes unavailable, one of each
when it answers again, and at most one WARNING a minute about callers that gave up waiting
for a connection while Redis answered (no outage)."""

from __future__ import annotations

import time

from guard_core._shared.connection.circuit_breaker import BreakerState, CircuitBreaker
from guard_core._shared.logs import get_logger
from guard_core._shared.redaction import redact_url
from guard_core.exceptions import RedisBusyError
from guard_core.models import SecurityConfig

from .events import EventSink

#: Seconds between two WARNINGs about callers that gave up waiting for a connection.
BUSY_WARNING_INTERVAL = 60.0


class Availability:
    def __init__(self, config: SecurityConfig, events: EventSink) -> None:
        self._config = config
        self._events = events
        self._logger = get_logger("redis")
        self.breaker = CircuitBreaker(
            config.redis_breaker_base_delay, config.redis_breaker_max_delay
        )
        #: Times Redis came back after being unavailable.
        self.recoveries = 0
        self._busy_warned_at: float | None = None

    @property
    def available(self) -> bool:
        """False from a connection failure until Redis answers again."""
        return self.breaker.state is BreakerState.CLOSED

    async def failed(self, reason: str) -> None:
        """A connection failure: the breaker opens (said once) or stays open."""
        if self.breaker.failed(reason):
            self._logger.warning(
                "Redis unavailable, failing fast and probing again within %.1f s: %s",
                self._config.redis_breaker_base_delay,
                reason,
            )
            await self._events.redis_event(
                event_type="redis_error",
                action_taken="circuit_opened",
                reason=f"Redis unavailable: {reason}",
                redis_url=redact_url(self._config.redis_url),
                error_type="connection_lost",
            )
        else:
            self._logger.debug("Redis still unavailable: %s", reason)

    async def succeeded(self) -> None:
        """Redis answered: the breaker closes (said once) if it was open."""
        if self.breaker.succeeded():
            self.recoveries += 1
            self._logger.warning("Redis available again")
            await self._events.redis_event(
                event_type="redis_connection",
                action_taken="connection_restored",
                reason="Redis answers again",
            )

    def gave_up_waiting(self, exc: RedisBusyError) -> None:
        """A caller found every connection in use for the whole wait: a WARNING at most
        every `BUSY_WARNING_INTERVAL` seconds (it may repeat for many callers at once)."""
        now = time.monotonic()
        last = self._busy_warned_at
        if last is not None and now - last < BUSY_WARNING_INTERVAL:
            self._logger.debug("Redis call gave up waiting for a connection: %s", exc.detail)
            return
        self._busy_warned_at = now
        self._logger.warning(
            "Redis calls gave up waiting for a connection (%s): Redis answers, but more "
            "callers than redis_max_connections=%d hold connections for long; not an outage",
            exc.detail,
            self._config.redis_max_connections,
        )
