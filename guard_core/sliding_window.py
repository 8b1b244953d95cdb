"""The in-memory sliding window used when Redis is unavailable (same results as the Lua one)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass


@dataclass(frozen=True)
class WindowResult:
    """Outcome of one hit: admitted or not, hits now in the window, seconds until one leaves."""

    allowed: bool
    count: int
    reset_after: float


class MemorySlidingWindow:
    """Per-key deques of hit times, bounded in keys (least recently used dropped) and per key.

    Thread-safe; nothing in it awaits, so the async face uses it as it is.
    """

    def __init__(self, max_keys: int) -> None:
        self._max_keys = max_keys
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

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
            hits = self._hits.get(key)
            if hits is None:
                hits = self._hits[key] = deque()
                while len(self._hits) > self._max_keys:
                    self._hits.popitem(last=False)
            else:
                self._hits.move_to_end(key)
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

    def __len__(self) -> int:
        return len(self._hits)
