"""`RateLimitManager`: sliding-window rate limits shared through Redis, in memory as fallback.

Redis layout: a sorted set at `rate_limit:rate:{identifier}` (`:{endpoint}` appended when
given), pruned, counted and recorded atomically by `lua/sliding_window.lua` on the server's
clock. During an outage each instance counts for itself.
"""

from __future__ import annotations

from guard_core.ip_utils import canonical_identifier
from guard_core.keys import encode_key_part
from guard_core.models import RateLimitResult, SecurityConfig
from guard_core.validation import check_count, check_seconds, check_text

from .redis_handler import RedisManager
from .window_store import SlidingWindowStore


class RateLimitManager:
    """Admits at most `limit` hits per `window` seconds for each identifier (and endpoint).

    A rejected hit is not recorded, so a client that keeps knocking regains access as its
    admitted hits leave the window.
    """

    def __init__(self, config: SecurityConfig, redis_handler: RedisManager | None = None) -> None:
        self.config = config
        self._store = SlidingWindowStore(
            config, redis_handler, "rate_limit", config.rate_limit_max_tracked
        )

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
    ) -> RateLimitResult:
        """Count one request and say whether it is admitted."""
        key = self._key(identifier, endpoint)
        limit = check_count("limit", self.config.rate_limit if limit is None else limit)
        window = check_seconds(
            "window", self.config.rate_limit_window if window is None else window
        )
        result = await self._store.hit(key, limit, window)
        return RateLimitResult(
            allowed=result.allowed,
            count=result.count,
            limit=limit,
            remaining=max(0, limit - result.count),
            reset_after=max(0.0, result.reset_after),
        )

    async def reset(self, identifier: str, *, endpoint: str = "") -> None:
        """Forget the window of an identifier (and endpoint), in Redis and in memory."""
        await self._store.reset(self._key(identifier, endpoint))

    @staticmethod
    def _key(identifier: str, endpoint: str) -> str:
        identifier = check_text("identifier", identifier)
        endpoint = check_text("endpoint", endpoint, allow_empty=True)
        # one client, one window (`::ffff:1.2.3.4` is `1.2.3.4`); the first ':' ends the
        # identifier, so no two (identifier, endpoint) pairs share a key
        identifier = encode_key_part(canonical_identifier(identifier))
        return f"rate:{identifier}:{endpoint}" if endpoint else f"rate:{identifier}"
