"""The in-memory sliding window used when Redis is unavailable (same results as the Lua one).

Bounded in keys: at the bound, keys whose window has emptied are dropped first (least
recently used first), then the least recently used live key, which loses its count. Such
evictions are counted (`evictions`) and logged once per state change: one WARNING when the
window store fills, one when it has room again (below `ROOM_AGAIN` of the bound).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from guard_core.logs import get_logger

#: A full window store has room again below this share of its bound.
ROOM_AGAIN = 0.9
#: Least recently used keys looked at for emptied windows each time a new key needs room.
_SWEEP = 8


@dataclass(frozen=True)
class WindowResult:
    """Outcome of one hit: admitted or not, hits now in the window, seconds until one leaves."""

    allowed: bool
    count: int
    reset_after: float


@dataclass
class _Track:
    window: float
    hits: deque[float] = field(default_factory=deque)

    def empty_at(self, now: float) -> bool:
        return not self.hits or self.hits[-1] <= now - self.window


class MemorySlidingWindow:
    """Per-key deques of hit times, bounded in keys (emptied windows dropped first, then the
    least recently used) and per key.

    Thread-safe; nothing in it awaits, so the async face uses it as it is. `area` names the
    logger (`guard_core.<area>`) and `what` the keys in its warnings.
    """

    def __init__(self, max_keys: int, *, area: str = "rate_limit", what: str = "keys") -> None:
        self._max_keys = max_keys
        self._hits: OrderedDict[str, _Track] = OrderedDict()
        self._lock = threading.Lock()
        self._logger = get_logger(area)
        self._what = what
        self.evictions = 0
        self.full = False

    def hit(
        self,
        key: str,
        limit: int,
        window: float,
        *,
        record_always: bool = False,
        now: float | None = None,
    ) -> WindowResult:
        """Prune, count and (when admitted, or always when tracking) record one hit."""
        now = time.monotonic() if now is None else now
        with self._lock:
            track = self._hits.get(key)
            if track is None:
                if len(self._hits) >= self._max_keys:
                    self._make_room(now)
                track = self._hits[key] = _Track(window)
                self._check_room()
            else:
                self._hits.move_to_end(key)
                track.window = window
            hits = track.hits
            while hits and hits[0] <= now - window:
                hits.popleft()
            allowed = len(hits) < limit
            if allowed or record_always:
                hits.append(now)
                while len(hits) > limit + 1:
                    hits.popleft()
            reset_after = window - (now - hits[0]) if hits else 0.0
            return WindowResult(allowed=allowed, count=len(hits), reset_after=reset_after)

    def reset(self, key: str) -> None:
        with self._lock:
            self._hits.pop(key, None)
            self._check_room()

    def _make_room(self, now: float) -> None:
        """At the bound (caller holds the lock): drop the emptied windows among the least
        recently used, then, if still full, the least recently used live key."""
        for stale in [
            k for k, t in itertools.islice(self._hits.items(), _SWEEP) if t.empty_at(now)
        ]:
            del self._hits[stale]
        if len(self._hits) >= self._max_keys:
            self._hits.popitem(last=False)
            self.evictions += 1
            if not self.full:
                self.full = True
                self._logger.warning(
                    "Memory window store full (%d %s): dropping the least recently used "
                    "counts; raise the bound or bring Redis back",
                    self._max_keys,
                    self._what,
                )

    def _check_room(self) -> None:
        if self.full and len(self._hits) < self._max_keys * ROOM_AGAIN:
            self.full = False
            self._logger.warning(
                "Memory window store has room again (%d of %d %s)",
                len(self._hits),
                self._max_keys,
                self._what,
            )

    def __len__(self) -> int:
        return len(self._hits)
