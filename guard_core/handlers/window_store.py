"""Sliding-window storage: the Lua window in Redis, a memory window when Redis cannot answer.

Policies (rate limits, behaviour tracking) decide keys, limits and what a count means; this
module only stores hits.
"""

from __future__ import annotations

import uuid

from guard_core.lua_scripts import SLIDING_WINDOW
from guard_core.sliding_window import MemorySlidingWindow, WindowResult

from .redis_handler import RedisManager, call_or_none


class SlidingWindowStore:
    """Hits per key in one namespace; shared through Redis, per instance during an outage."""

    def __init__(self, redis: RedisManager | None, namespace: str, max_keys: int) -> None:
        self._redis = redis
        self._namespace = namespace
        self._memory = MemorySlidingWindow(max_keys)

    async def hit(
        self, key: str, limit: int, window: float, *, record_always: bool = False
    ) -> WindowResult:
        """Prune, count and record one hit (only when admitted unless `record_always`)."""
        args: list[str | int | float] = [
            limit,
            max(1, round(window * 1000)),
            uuid.uuid4().hex,
            "1" if record_always else "0",
        ]
        reply = await call_or_none(
            self._redis,
            lambda r: r.run_script(SLIDING_WINDOW, keys=[(self._namespace, key)], args=args),
        )
        if reply is None:
            return self._memory.hit(key, limit, window, record_always=record_always)
        allowed, count, reset_ms = reply
        return WindowResult(
            allowed=bool(allowed), count=int(count), reset_after=max(0, int(reset_ms)) / 1000
        )

    async def reset(self, key: str) -> None:
        """Forget a key's hits, in Redis and in memory."""
        self._memory.reset(key)
        await call_or_none(self._redis, lambda r: r.delete(self._namespace, key))
