"""Rate limits during a Redis outage, split between the instances that share them.

While Redis answers, each instance keeps a warm copy of the last count Redis gave for each
recently seen key (a bounded LRU). When Redis goes away, an instance admits for a key at
most its share of what was left of the limit: `(limit - used) / live instances`, where
`used` is that last count (0 for a key never seen, or seen more than a window ago). The
remainder of the division goes to some instances by their place among the live ones, turned
by the key, so the shares add up to what was left, never more.

Each hit admitted during the outage keeps an id and its wall-clock time, so that once Redis
answers again it is written into the shared window exactly once (`storage.outage_hits`).
Thread-safe; nothing in it awaits, so both faces share it.
"""

from __future__ import annotations

import threading
import time
import uuid
import zlib
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from guard_core._shared.storage.memory_windows import WindowResult

SHARE, LOCAL, DENY = "share", "local", "deny"


@dataclass(frozen=True)
class Members:
    """The live instances as last seen in Redis: how many, and this one's place among them."""

    count: int = 1
    rank: int = 0


@dataclass(frozen=True)
class Hit:
    """One hit counted during an outage: its id (its member in the shared window) and when."""

    id: str
    at: float


def share_of(remaining: int, members: Members, key: str) -> int:
    """This instance's part of `remaining` hits for `key`: the parts of all the live
    instances add up to `remaining` exactly."""
    count = max(1, members.count)
    base, extra = divmod(max(0, remaining), count)
    turn = (members.rank - zlib.crc32(key.encode())) % count
    return base + (1 if turn < extra else 0)


@dataclass
class _KeyState:
    used: int = 0
    #: Wall-clock time of the last Redis reply for the key (0: never seen).
    seen_at: float = 0.0
    hits: deque[Hit] = field(default_factory=deque)


class OutageWindows:
    """Per key: the count Redis last gave (warm window) and the hits counted here since
    Redis stopped answering. Bounded in keys (least recently used dropped)."""

    def __init__(self, max_keys: int) -> None:
        self._max_keys = max_keys
        self._keys: OrderedDict[str, _KeyState] = OrderedDict()
        self._lock = threading.Lock()

    def seen(self, key: str, count: int, now: float | None = None) -> None:
        """Redis answered for `key` with `count` hits in the shared window: the outage (if
        any) is over for it; its hits are in the journal, written back from there."""
        now = time.time() if now is None else now
        with self._lock:  # on every Redis reply: `_state` spelled out
            state = self._keys.get(key)
            if state is None:
                state = self._state(key)
            else:
                self._keys.move_to_end(key)
            state.used, state.seen_at = count, now
            if state.hits:
                state.hits.clear()

    def hit(
        self,
        key: str,
        limit: int,
        window: float,
        members: Members,
        *,
        record_always: bool = False,
        hit_id: str | None = None,
        now: float | None = None,
        cost: int = 1,
    ) -> tuple[WindowResult, tuple[Hit, ...] | None]:
        """Count one hit while Redis is unavailable against this instance's share. Returns
        the result, and the key's outage hits still in the window when this one was
        recorded (None when it was not). `hit_id`: the id Redis was sent for this hit (a
        hung Redis may still count it once it wakes up: then it is counted once)."""
        now = time.time() if now is None else now
        with self._lock:
            state = self._state(key)
            hits = state.hits
            while hits and hits[0].at <= now - window:
                hits.popleft()
            used = state.used if state.seen_at > now - window else 0
            budget = share_of(limit - used, members, key)
            allowed = len(hits) + cost <= budget
            recorded: tuple[Hit, ...] | None = None
            if allowed or record_always:
                first = uuid.uuid4().hex if hit_id is None else hit_id
                hits.append(Hit(first, now))
                hits.extend(Hit(f"{first}/{n}", now) for n in range(1, cost))
                while len(hits) > limit + 1 and record_always:
                    hits.popleft()
                recorded = tuple(hits)
            # in shared terms: the part of the limit left to the others, plus the hits here
            count = limit - budget + len(hits)
            reset_after = window - (now - hits[0].at) if hits else 0.0
            return WindowResult(allowed=allowed, count=count, reset_after=reset_after), recorded

    def reset(self, key: str) -> None:
        with self._lock:
            self._keys.pop(key, None)

    def __len__(self) -> int:
        return len(self._keys)

    def _state(self, key: str) -> _KeyState:
        """The key's state, made on first use (caller holds the lock)."""
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _KeyState()
            while len(self._keys) > self._max_keys:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(key)
        return state


def denied(limit: int, window: float) -> WindowResult:
    """The verdict of the "deny" policy while Redis is unavailable."""
    return WindowResult(allowed=False, count=limit, reset_after=window)
