"""Re-reading shared state at most once per interval, by one caller at a time.

Subsystems cache what other instances may change (custom patterns, header configuration,
network bans) and re-read it from Redis now and then; the claim is taken before the read,
so concurrent callers keep answering from the cache instead of all reading at once.
Thread-safe; nothing in it awaits, so both faces share it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class RefreshClaim:
    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._next = -math.inf

    def claim(self, *, force: bool = False) -> bool:
        """True for exactly one caller once the interval has passed (always with `force`);
        the next claim is then due one interval later."""
        now = self._clock()
        with self._lock:
            if now < self._next and not force:
                return False
            self._next = now + self._interval
            return True

    def due(self) -> bool:
        """Whether a claim made now would succeed (told without taking it)."""
        return self._clock() >= self._next

    def expire(self) -> None:
        """Make the next claim succeed at once (the cached copy is known to be stale)."""
        with self._lock:
            self._next = -math.inf
