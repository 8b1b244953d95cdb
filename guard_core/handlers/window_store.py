"""Sliding-window counting for policies (rate limits, behaviour tracking): the shared window
in Redis when it answers, a memory window when it does not.

Policies decide keys, limits and what a count means; this module only counts hits.
"""

from __future__ import annotations

from guard_core.models import SecurityConfig
from guard_core.outcome import Unavailable
from guard_core.sliding_window import MemorySlidingWindow, WindowResult

from ..storage.state_store import StateStore
from .redis_handler import RedisManager

#: namespace -> (logger area, what its keys are, for the memory window's warnings)
_NAMED = {
    "rate_limit": ("rate_limit", "rate-limited identifiers"),
    "behavior_usage": ("behavior", "tracked (endpoint, client) pairs"),
}


class SlidingWindowStore:
    """Hits per key in one namespace; shared through Redis, per instance during an outage."""

    def __init__(
        self, config: SecurityConfig, redis: RedisManager | None, namespace: str, max_keys: int
    ) -> None:
        self._store = StateStore.of(config, redis)
        self._namespace = namespace
        area, what = _NAMED.get(namespace, (namespace, "keys"))
        self._memory = MemorySlidingWindow(max_keys, area=area, what=what)

    @property
    def evictions(self) -> int:
        """Live keys the memory window dropped to stay within its bound."""
        return self._memory.evictions

    async def hit(
        self, key: str, limit: int, window: float, *, record_always: bool = False
    ) -> WindowResult:
        """Prune, count and record one hit (only when admitted unless `record_always`)."""
        if self._store.sharing:
            await self._store.sync()
            shared = await self._store.window_hit(
                self._namespace, key, limit, window, record_always=record_always
            )
            if not isinstance(shared, Unavailable):
                return shared
        return self._memory.hit(key, limit, window, record_always=record_always)

    async def reset(self, key: str) -> None:
        """Forget a key's hits, in memory and in Redis (written back after an outage)."""
        self._memory.reset(key)
        if self._store.sharing:
            await self._store.submit(self._store.window_reset_change(self._namespace, key))
