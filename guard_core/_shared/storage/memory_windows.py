"""The in-memory sliding window used when Redis is unavailable (same results as the Lua one).

Bounded in keys: at the bound, keys whose window has emptied are dropped first (least
recently used first), then the least recently used live key, which loses its count. Such
evictions are counted (`evictions`) and logged once per state change: one WARNING when the
window store fills, one when it has room again (below `ROOM_AGAIN` of the bound).

Also the ids of hits (`next_hit_id`): each hit sent to a shared window is named, so that a
hit written again (after an outage, or by a retried call) is counted once.
"""

from __future__ import annotations

import itertools
import os
import secrets
import threading
import time
from collections import OrderedDict, deque
from typing import NamedTuple

from guard_core._shared.logs import get_logger
from guard_core._shared.results import RateLimitResult

#: A full window store has room again below this share of its bound.
ROOM_AGAIN = 0.9
#: Least recently used keys looked at for emptied windows each time a new key needs room.
_SWEEP = 8
_monotonic = time.monotonic
_new = tuple.__new__  # builds a named tuple from its fields, without a call of its __new__


class WindowResult(NamedTuple):
    """Outcome of one hit: admitted or not, hits now in the window, seconds until one leaves.

    A named tuple: immutable, and cheap to build on the hot path (`count` hides the tuple
    method of that name).
    """

    allowed: bool
    count: int  # type: ignore[assignment]  # the field, not tuple.count
    reset_after: float


# -- hit ids ------------------------------------------------------------------------------
#
# An id is a random prefix drawn once per process (96 bits, from the OS) followed by a
# counter: unique across instances as uuid4 ids are, at a fraction of their cost per hit. A
# forked child draws a prefix of its own, so that it never repeats its parent's ids.

_hit_prefix = ""
_hit_counter = itertools.count()


def _new_hit_prefix() -> None:
    global _hit_prefix, _hit_counter
    _hit_prefix = secrets.token_hex(12) + "-"
    _hit_counter = itertools.count()


_new_hit_prefix()
if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_new_hit_prefix)


def next_hit_id() -> str:
    """A new id for one hit, unique across processes and instances (thread-safe)."""
    return f"{_hit_prefix}{next(_hit_counter):x}"


class _Track(deque[float]):
    """The hit times of one key (oldest first), and the window they were counted in."""

    __slots__ = ("window",)

    def __init__(self, window: float) -> None:
        super().__init__()
        self.window = window

    def empty_at(self, now: float) -> bool:
        return not self or self[-1] <= now - self.window


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
        # bound once: the hot path calls them on every hit
        self._move_to_end = self._hits.move_to_end
        self._acquire = self._lock.acquire
        self._release = self._lock.release

    def hit(
        self,
        key: str,
        limit: int,
        window: float,
        *,
        record_always: bool = False,
        now: float | None = None,
        cost: int = 1,
    ) -> WindowResult:
        """Prune, count and (when admitted, or always when tracking) record one hit, which
        counts as `cost` hits."""
        if now is None:
            now = _monotonic()
        with self._lock:
            hits = self._track(key, window, now)
            while hits and hits[0] <= now - window:
                hits.popleft()
            allowed = len(hits) + cost <= limit
            if allowed or record_always:
                hits.append(now)
                if cost > 1:
                    hits.extend(itertools.repeat(now, cost - 1))
                while len(hits) > limit + 1 and record_always:
                    hits.popleft()
            reset_after = window - (now - hits[0]) if hits else 0.0
            return _new(WindowResult, (allowed, len(hits), reset_after))

    def verdict(self, key: str, limit: int, window: float, cost: int = 1) -> RateLimitResult:
        """A rate limit's verdict on one request: `hit` (without options) as the caller's
        final result, built once. On every request while Redis is disabled, hence spelled
        out for speed; `limit` and `window` are the caller's to check."""
        now = _monotonic()
        self._acquire()
        try:
            hits = self._hits.get(key)
            if hits is None:
                hits = self._track(key, window, now)
            else:
                self._move_to_end(key)
                hits.window = window
            start = now - window
            while hits and hits[0] <= start:
                hits.popleft()
            count = len(hits)
            allowed = count + cost <= limit
            if allowed:
                hits.append(now)
                if cost > 1:
                    hits.extend(itertools.repeat(now, cost - 1))
                count += cost
            # the oldest hit is inside the window, so only float rounding could make this
            # negative; no hit at all only when a cost above the limit was refused
            reset_after = window - (now - hits[0]) if hits else 0.0
            return _new(
                RateLimitResult,
                (
                    allowed,
                    count,
                    limit,
                    limit - count if allowed else 0,
                    reset_after if reset_after > 0 else 0.0,
                ),
            )
        finally:
            self._release()

    def _track(self, key: str, window: float, now: float) -> _Track:
        """The key's hits, made (room made first at the bound) or marked most recently used
        (caller holds the lock)."""
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= self._max_keys:
                self._make_room(now)
            hits = self._hits[key] = _Track(window)
            self._check_room()
        else:
            self._hits.move_to_end(key)
            hits.window = window
        return hits

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
