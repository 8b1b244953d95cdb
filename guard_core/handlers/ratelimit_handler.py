"""`RateLimitManager`: sliding-window rate limits shared through Redis, in memory as fallback.

Redis layout: a sorted set at `rate_limit:rate:{identifier}` (`:{endpoint}` appended when
given), pruned, counted and recorded atomically by `lua/sliding_window.lua` on the server's
clock. During an outage, what `rate_limit_outage_policy` says (by default each instance
admits its share of what was left of the limit: `guard_core.storage.window_store`).

`check()` runs on every request, so its path is kept short: the key of an (identifier,
endpoint) pair is worked out once and remembered (`guard_core._shared.policy.rate_keys`), limits and
windows of the usual types are range-checked inline (anything else goes through the full
checks), and with Redis disabled the memory window gives the verdict without an await.
"""

from __future__ import annotations

from guard_core._shared.keys import RATE_LIMIT
from guard_core._shared.policy.rate_keys import KeyMemo, window_key
from guard_core._shared.storage.memory_windows import WindowResult
from guard_core._shared.validation import (
    MAX_COUNT,
    MAX_TTL,
    check_cost,
    check_count,
    check_seconds,
)
from guard_core.models import RateLimitResult, SecurityConfig

from ..connection.manager import RedisManager
from ..storage.state_store import StateStore
from ..storage.window_store import SlidingWindowStore

#: Shortest window accepted, in seconds (as `check_seconds`).
_MIN_WINDOW = 0.001
_verdict = tuple.__new__  # builds a RateLimitResult from its fields without a call of __new__


def _result(found: WindowResult, limit: int) -> RateLimitResult:
    allowed, count, reset_after = found
    return _verdict(
        RateLimitResult,
        (
            allowed,
            count,
            limit,
            limit - count if count < limit else 0,
            reset_after if reset_after > 0 else 0.0,
        ),
    )


class RateLimitManager:
    """Admits at most `limit` hits per `window` seconds for each identifier (and endpoint).

    A rejected hit is not recorded, so a client that keeps knocking regains access as its
    admitted hits leave the window.
    """

    def __init__(
        self,
        config: SecurityConfig,
        redis_handler: RedisManager | None = None,
        *,
        store: StateStore | None = None,
    ) -> None:
        self.config = config
        self._store = SlidingWindowStore(
            config, redis_handler, RATE_LIMIT, config.rate_limit_max_tracked, store=store
        )
        self._keys = KeyMemo(config.rate_limit_max_tracked)
        self._plain, self._paired = self._keys.plain, self._keys.paired
        # the defaults, checked on use as any limit and window are: inline, and not again
        # while callers pass the very object last found valid (ints and floats are immutable)
        self._limit = config.rate_limit
        self._window = float(config.rate_limit_window)
        self._valid_limit: int | None = None
        self._valid_window: float | None = None
        #: The memory window when Redis is disabled (counted without awaiting), else None.
        self._local = None if self._store.shared else self._store.memory

    @property
    def memory_evictions(self) -> int:
        """Counts the memory fallback dropped to stay within its bound (see `health()`)."""
        return self._store.evictions

    async def check(
        self,
        identifier: str,
        *,
        endpoint: str = "",
        limit: int | None = None,
        window: float | None = None,
        cost: int = 1,
    ) -> RateLimitResult:
        """Count one request and say whether it is admitted; a request of `cost` n counts as
        n hits (admitted only when all n fit; at most `MAX_COST`)."""
        key, limit, window, cost = self._arguments(identifier, endpoint, limit, window, cost)
        local = self._local
        if local is not None:
            return local.verdict(key, limit, window, cost)
        return _result(await self._store.hit(key, limit, window, cost=cost), limit)

    def check_now(
        self,
        identifier: str,
        *,
        endpoint: str = "",
        limit: int | None = None,
        window: float | None = None,
        cost: int = 1,
    ) -> RateLimitResult | None:
        """What `check(...)` gives, counted without awaiting (in memory, or from this
        instance's lease of the window), or None when it needs Redis: nothing was counted
        then, and `check` with the same arguments counts the request."""
        key, limit, window, cost = self._arguments(identifier, endpoint, limit, window, cost)
        local = self._local
        if local is not None:
            return local.verdict(key, limit, window, cost)
        found = self._store.hit_now(key, limit, window, cost)
        return None if found is None else _result(found, limit)

    def _arguments(
        self, identifier: str, endpoint: str, limit: int | None, window: float | None, cost: int
    ) -> tuple[str, int, float, int]:
        """The window key and the checked limit, window and cost of one check."""
        try:
            if endpoint == "":
                key = self._plain(identifier)
            else:
                key = self._paired((identifier, endpoint))
        except TypeError:  # unhashable: no text, refused by `key()` with a clear message
            key = None
        if key is None:
            key = self._keys.key(identifier, endpoint)
        if limit is None:
            limit = self._limit
        if limit is not self._valid_limit:  # the very object checked last time is valid
            if limit.__class__ is not int or not 0 < limit <= MAX_COUNT:
                limit = check_count("limit", limit)
            self._valid_limit = limit
        if window is None:
            window = self._window
        if window is not self._valid_window:
            kind = window.__class__
            if (kind is not float and kind is not int) or not _MIN_WINDOW <= window <= MAX_TTL:
                window = check_seconds("window", window)
            self._valid_window = window
        if cost != 1:
            cost = check_cost(cost)
        return key, limit, window, cost

    async def reset(self, identifier: str, *, endpoint: str = "") -> None:
        """Forget the window of an identifier (and endpoint), in Redis and in memory."""
        await self._store.reset(window_key(identifier, endpoint))
