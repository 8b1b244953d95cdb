"""Sliding windows in Redis (`rate_limit:…`, `behavior_usage:…`: sorted sets of hits), and
their resets (journal topic `window`).

A hit is pruned, counted and recorded at once by `lua/sliding_window.lua` on the server's
clock. A reset deletes the window; written back after an outage, it removes only the hits
made before it, and keeps those counted since.
"""

from __future__ import annotations

import math
import time
from typing import Any

from guard_core._shared.storage.journal import Change
from guard_core._shared.storage.lua_scripts import SLIDING_WINDOW
from guard_core._shared.storage.memory_windows import WindowResult, next_hit_id
from guard_core._shared.storage.outcomes import UNAVAILABLE, Unavailable, Written

from .topics import WINDOW, Applied, Store, applied

_window_result = tuple.__new__  # a WindowResult from its fields, without a call of __new__


class WindowStorage:
    """The shared sliding windows of one store."""

    name = WINDOW
    label = "rate-limit window resets"
    cached = False  # windows are never cached: telling instances would cost a round trip

    def __init__(self, store: Store) -> None:
        self._store = store

    async def hit(
        self,
        namespace: str,
        key: str,
        limit: int,
        window: float,
        *,
        record_always: bool,
        hit_id: str | None = None,
        cost: int = 1,
    ) -> WindowResult | Unavailable:
        """Prune, count and record one hit in a shared window (server clock); `hit_id`
        names the hit (its member: a hit written again later is counted once); a hit of
        `cost` n counts as n hits (members `hit_id`, `hit_id/1`, ...)."""
        window_ms = round(window * 1000)
        args: tuple[str | int | float, ...] = (
            limit,
            window_ms if window_ms > 1 else 1,
            next_hit_id() if hit_id is None else hit_id,
            "1" if record_always else "0",
        )
        if cost != 1:
            args += (cost,)
        reply = await self._store.script(SLIDING_WINDOW, ((namespace, key),), args)
        if isinstance(reply, Unavailable):
            return UNAVAILABLE
        allowed, count, reset_ms = reply
        reset_ms = int(reset_ms)
        return _window_result(
            WindowResult, (bool(allowed), int(count), reset_ms / 1000 if reset_ms > 0 else 0.0)
        )

    async def lease(
        self, namespace: str, key: str, limit: int, window: float, size: int, cost: int
    ) -> tuple[WindowResult, int] | Unavailable:
        """Record a lease of up to `size` hits in a shared window (as many as still fit, when
        that is at least `cost`, the hit's own); the window's state and the hits granted."""
        window_ms = round(window * 1000)
        args = (limit, window_ms if window_ms > 1 else 1, next_hit_id(), "0", size, cost)
        reply = await self._store.script(SLIDING_WINDOW, ((namespace, key),), args)
        if isinstance(reply, Unavailable):
            return UNAVAILABLE
        allowed, count, reset_ms, granted = reply
        reset_ms = int(reset_ms)
        result = _window_result(
            WindowResult, (bool(allowed), int(count), reset_ms / 1000 if reset_ms > 0 else 0.0)
        )
        return result, int(granted)

    def reset_change(self, namespace: str, key: str) -> Change:
        """The journal change resetting the window `{namespace}:{key}`."""
        now = time.time()
        return Change(
            topic=WINDOW, target=f"{namespace}:{key}", action="reset", at=now,
            keep_until=now + self._store.config.redis_lift_memory, durable=False,
        )  # fmt: skip

    async def write(self, change: Change, *, replay: bool) -> Applied:
        store = self._store
        namespace, _, key = change.target.partition(":")
        if not replay:
            deleted = await store.call(lambda r: r.delete(namespace, key))
            return applied(deleted, changed_if=lambda n: bool(n))
        # written back later: forget the hits made before the reset, keep those made since
        before_ms = math.floor(change.at * 1000)
        redis = store.redis
        if redis is None:
            return Applied(Written.KEPT)
        full_key = redis.full_key(namespace, key)

        async def _trim(conn: Any) -> int:
            removed: int = await conn.zremrangebyscore(full_key, "-inf", before_ms)
            return removed

        removed = await store.call(lambda r: r.safe_operation(_trim))
        return applied(removed, changed_if=lambda n: bool(n))
