"""`VerdictCache`: ban verdicts (banned or not, per address as given) held locally.

The cache answers only while it is *trusted*: an invalidation subscription is up (every ban
change made by any instance reaches it), and Redis has been answering since the cache was
last emptied. Anything that may have let a change go unseen (the subscription dropped, the
circuit breaker opened, Redis restarted) empties it and withdraws trust until the
subscription is back.

A verdict read from Redis is kept only if no invalidation arrived while it was being read:
callers take a `ticket()` before the read and hand it back with the verdict. A banned
verdict holds until the ban ends; a not-banned one until the next invalidation.
Thread-safe; nothing in it awaits, so both faces share it.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

#: Verdicts held at most (the oldest dropped first).
MAX_VERDICTS = 65_536


class VerdictCache:
    def __init__(
        self, max_entries: int = MAX_VERDICTS, clock: Callable[[], float] = time.time
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, not {max_entries}")
        self._max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        # address as given -> (banned, until: wall-clock time the verdict stops holding)
        self._verdicts: OrderedDict[str, tuple[bool, float]] = OrderedDict()
        self._epoch = 0
        self._trusted = False
        self._marks: object = None

    @property
    def trusted(self) -> bool:
        return self._trusted

    def __len__(self) -> int:
        return len(self._verdicts)

    def get(self, address: str, marks: object) -> bool | None:
        """The held verdict for `address`, or None (none held, ended, or not trusted).

        `marks`: what identifies Redis's continuity now (the manager's recovery and restart
        counts); when it differs from the last one seen, everything held is dropped."""
        if not self._trusted:
            return None
        if marks != self._marks:
            self._reset(marks)
            return None
        found = self._verdicts.get(address)
        if found is None:
            return None
        banned, until = found
        if until <= self._clock():
            return None
        return banned

    def ticket(self) -> int:
        """Take before reading a verdict from Redis; give back to `put`."""
        return self._epoch

    def put(self, address: str, banned: bool, until: float, ticket: int, marks: object) -> bool:
        """Keep a verdict read from Redis, unless something changed since `ticket` was
        taken (or the cache is not trusted); whether it was kept."""
        if math.isnan(until):
            raise ValueError("until must be a time, not NaN")
        with self._lock:
            if not self._trusted or ticket != self._epoch or marks != self._marks:
                return False
            self._verdicts[address] = (banned, until)
            self._verdicts.move_to_end(address)
            while len(self._verdicts) > self._max_entries:
                self._verdicts.popitem(last=False)
            return True

    def invalidate(self) -> None:
        """A ban changed somewhere: drop every verdict (they may depend on it)."""
        with self._lock:
            self._epoch += 1
            self._verdicts.clear()

    def trust(self, marks: object) -> None:
        """The subscription is (back) up: start afresh, trusted."""
        with self._lock:
            self._epoch += 1
            self._verdicts.clear()
            self._marks = marks
            self._trusted = True

    def distrust(self) -> None:
        """Changes may go unseen from now on: drop everything and answer nothing."""
        with self._lock:
            self._epoch += 1
            self._verdicts.clear()
            self._trusted = False

    def _reset(self, marks: object) -> None:
        with self._lock:
            self._epoch += 1
            self._verdicts.clear()
            self._marks = marks
