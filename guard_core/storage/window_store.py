"""Sliding-window counting for policies (rate limits, behaviour tracking): the shared window
in Redis when it answers; while it does not, what `rate_limit_outage_policy` says:
- "share": each instance counts against its share of what was left of the limit (see
  `guard_core._shared.storage.outage_windows`); those hits are written into the shared
  window afterwards;
- "local": each instance counts for itself in a memory window;
- "deny": limiting refuses every hit (tracking counts as under "share").

Policies decide keys, limits and what a count means; this module only counts hits.
"""

from __future__ import annotations

from guard_core._shared.keys import BEHAVIOR_USAGE, RATE_LIMIT
from guard_core._shared.storage.memory_windows import MemorySlidingWindow, WindowResult, next_hit_id
from guard_core._shared.storage.outage_windows import DENY, LOCAL, denied
from guard_core._shared.storage.outcomes import Unavailable
from guard_core._shared.storage.window_leases import WindowLeases
from guard_core.models import SecurityConfig

from ..connection.manager import RedisManager
from .state_store import StateStore

#: namespace -> (logger area, what its keys are, for the memory window's warnings)
_NAMED = {
    RATE_LIMIT: ("rate_limit", "rate-limited identifiers"),
    BEHAVIOR_USAGE: ("behavior", "tracked (endpoint, client) pairs"),
}


class SlidingWindowStore:
    """Hits per key in one namespace; shared through Redis, by policy during an outage."""

    def __init__(
        self,
        config: SecurityConfig,
        redis: RedisManager | None,
        namespace: str,
        max_keys: int,
        *,
        store: StateStore | None = None,
    ) -> None:
        self._store = StateStore.for_subsystem(config, redis, store)
        self._windows = self._store.windows
        self._namespace = namespace
        area, what = _NAMED.get(namespace, (namespace, "keys"))
        #: The memory window: counts while Redis is disabled (and under policy "local").
        self.memory = MemorySlidingWindow(max_keys, area=area, what=what)
        #: Whether hits go to the shared window first (fixed: configurations are frozen).
        self.shared = self._store.sharing
        self._policy = config.rate_limit_outage_policy
        self._warm_up = self._policy != LOCAL
        self._share = self._store.outage
        self._warm = self._share.windows(namespace, max_keys)
        fraction = config.rate_limit_lease
        #: Local quota leases of limiting hits (None: every hit goes to Redis).
        self.leases = WindowLeases(fraction, max_keys) if fraction > 0 and self.shared else None

    @property
    def evictions(self) -> int:
        """Live keys the memory window dropped to stay within its bound."""
        return self.memory.evictions

    async def hit(
        self, key: str, limit: int, window: float, *, record_always: bool = False, cost: int = 1
    ) -> WindowResult:
        """Prune, count and record one hit (only when admitted unless `record_always`); a
        hit of `cost` n counts as n."""
        if self.shared:
            store = self._store
            if store.sync_due:
                await store.sync()
            leases = self.leases
            if leases is not None and not record_always and leases.leasable(limit):
                leased = await self._leased(leases, key, limit, window, cost)
                if leased is not None:
                    return leased
            hit_id = next_hit_id()  # one id for the hit, whichever window counts it
            shared = await self._windows.hit(
                self._namespace,
                key,
                limit,
                window,
                record_always=record_always,
                hit_id=hit_id,
                cost=cost,
            )
            if not isinstance(shared, Unavailable):
                if self._warm_up:
                    self._warm.seen(key, shared.count)
                return shared
            if self._policy == DENY and not record_always:
                return denied(limit, window)
            if self._policy != LOCAL:
                return self._share.hit(
                    self._warm,
                    self._namespace,
                    key,
                    limit,
                    window,
                    record_always=record_always,
                    hit_id=hit_id,
                    cost=cost,
                )
        return self.memory.hit(key, limit, window, record_always=record_always, cost=cost)

    def hit_now(self, key: str, limit: int, window: float, cost: int = 1) -> WindowResult | None:
        """A limiting hit counted without awaiting: in memory when Redis is not in use, or
        from this instance's live lease of the window; None when it needs Redis (nothing
        was counted, and `hit` counts it)."""
        if not self.shared:
            return self.memory.hit(key, limit, window, cost=cost)
        leases = self.leases
        if leases is None or self._store.sync_due or not leases.leasable(limit):
            return None
        return leases.spend(key, limit, window, cost)

    async def _leased(
        self, leases: WindowLeases, key: str, limit: int, window: float, cost: int
    ) -> WindowResult | None:
        """A limiting hit admitted from a lease (taken now if due), or None: sent alone."""
        spent = leases.spend(key, limit, window, cost)
        if spent is not None:
            return spent
        size = leases.claim(key, limit, window, cost)
        if not size:
            return None
        try:
            reply = await self._windows.lease(self._namespace, key, limit, window, size, cost)
        except BaseException:
            leases.failed(key)
            raise
        if isinstance(reply, Unavailable):
            leases.failed(key)
            return None
        result, granted = reply
        if self._warm_up:
            self._warm.seen(key, result.count)
        return leases.granted(key, limit, window, cost, granted, result)

    async def reset(self, key: str) -> None:
        """Forget a key's hits, in memory and in Redis (written back after an outage)."""
        self.memory.reset(key)
        if self.leases is not None:
            self.leases.forget(key)
        self._warm.reset(key)
        if self.shared:
            self._share.forget(self._namespace, key)
            await self._store.submit(self._windows.reset_change(self._namespace, key))
