"""When a subsystem should write to Redis what it holds only locally (no lost writes).

After Redis comes back (a recovery) a subsystem writes the changes Redis did not take; after
Redis restarted (its data may be gone) it writes everything it holds. While changes are
pending and Redis keeps refusing them (an error reply, say), it retries at most once per
interval. Thread-safe; nothing in it awaits, so both faces share it.
"""

from __future__ import annotations

import enum
import threading
import time


class Replay(enum.Enum):
    PENDING = "pending"  # write what Redis has not taken
    EVERYTHING = "everything"  # Redis restarted: write all state held here


class WriteBackSchedule:
    def __init__(self, retry_interval: float) -> None:
        self._retry_interval = retry_interval
        self._lock = threading.Lock()
        self._seen = (0, 0)
        self._retry_at = 0.0

    @property
    def seen_restarts(self) -> int:
        """The restart count the last replay answered to."""
        return self._seen[1]

    def answered(self, recoveries: int, restarts: int) -> bool:
        """Whether the last replay answered to these counts (a lock-free read for the hot
        path: then only pending changes can make a replay due)."""
        return self._seen == (recoveries, restarts)

    def ready(self, recoveries: int, restarts: int, *, pending: bool) -> bool:
        """Whether `due()` would answer a replay now (a lock-free read: the request path
        wakes the flusher only then, not while a refused change waits for its retry)."""
        if (recoveries, restarts) != self._seen:
            return True
        return pending and time.monotonic() >= self._retry_at

    def go_on(self) -> None:
        """A write-back stopped with changes left (not for a failure): the next `due()`
        answers at once rather than after the retry interval."""
        with self._lock:
            self._retry_at = 0.0

    def due(self, recoveries: int, restarts: int, *, pending: bool) -> Replay | None:
        """What to replay now, if anything (cheap when nothing changed)."""
        version = (recoveries, restarts)
        if version == self._seen and not pending:
            return None
        now = time.monotonic()
        with self._lock:
            restarted = restarts != self._seen[1]
            if version == self._seen and now < self._retry_at:
                return None
            self._seen = version
            self._retry_at = now + self._retry_interval
        if restarted:
            return Replay.EVERYTHING
        return Replay.PENDING if pending else None
