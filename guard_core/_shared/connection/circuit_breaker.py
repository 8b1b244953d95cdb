"""A circuit breaker for the Redis connection: fail fast while Redis is down, probe it alone.

closed: calls go through. A connection failure or timeout opens the breaker.
open: calls fail fast without touching the network until the retry delay has passed; then
one caller becomes the probe (half-open) while the others keep failing fast.
Any answer from Redis closes the breaker; a failed probe reopens it with the delay doubled,
up to a cap. Thread-safe; nothing in it awaits, so both faces share it.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from typing import Any


class Admission(enum.Enum):
    ALLOW = "allow"  # breaker closed
    PROBE = "probe"  # this caller tests Redis for everyone
    REJECT = "reject"  # fail fast


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        base_delay: float,
        max_delay: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._delay = base_delay
        self._retry_at = 0.0
        self._opened_at: float | None = None
        self.last_error = ""
        self.failures = 0
        self.rejections = 0
        self.times_opened = 0

    @property
    def state(self) -> BreakerState:
        return self._state

    def admit(self) -> Admission:
        """May a call go to Redis now?"""
        if self.state is BreakerState.CLOSED:  # the common case, without the lock
            return Admission.ALLOW
        with self._lock:
            if self._state is BreakerState.CLOSED:
                return Admission.ALLOW
            if self._state is BreakerState.OPEN and self._clock() >= self._retry_at:
                self._state = BreakerState.HALF_OPEN
                return Admission.PROBE
            self.rejections += 1
            return Admission.REJECT

    def succeeded(self) -> bool:
        """Record a call that Redis answered; True when it closed the breaker."""
        if self.state is BreakerState.CLOSED:  # the common case, without the lock
            return False
        with self._lock:
            if self._state is BreakerState.CLOSED:
                return False
            self._state = BreakerState.CLOSED
            self._delay = self._base_delay
            self._opened_at = None
            return True

    def failed(self, error: str) -> bool:
        """Record a connection failure or timeout; True when it opened the breaker."""
        with self._lock:
            self.failures += 1
            self.last_error = error
            now = self._clock()
            if self._state is BreakerState.CLOSED:
                self._state = BreakerState.OPEN
                self._delay = self._base_delay
                self._retry_at = now + self._delay
                self._opened_at = now
                self.times_opened += 1
                return True
            if self._state is BreakerState.HALF_OPEN:
                # a failed probe: wait longer before the next one
                self._delay = min(self._max_delay, max(self._delay * 2, self._base_delay))
                self._state = BreakerState.OPEN
                self._retry_at = now + self._delay
            # already open: a call that was in flight failed late; the schedule stands
            return False

    def abandoned(self, admission: Admission) -> None:
        """A probe that ended without an answer (cancelled): let the next caller probe."""
        if admission is not Admission.PROBE:
            return
        with self._lock:
            if admission is Admission.PROBE and self._state is BreakerState.HALF_OPEN:
                self._state = BreakerState.OPEN
                self._retry_at = self._clock()

    def snapshot(self) -> dict[str, Any]:
        """State and counters, for health reports."""
        with self._lock:
            now = self._clock()
            return {
                "state": self._state.value,
                "failures": self.failures,
                "rejections": self.rejections,
                "times_opened": self.times_opened,
                "open_for": None if self._opened_at is None else now - self._opened_at,
                "next_probe_in": (
                    max(0.0, self._retry_at - now) if self._state is BreakerState.OPEN else None
                ),
                "last_error": self.last_error,
            }
