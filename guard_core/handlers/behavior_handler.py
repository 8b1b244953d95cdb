"""`BehaviorTracker`: how often each client uses each endpoint, in a sliding window.

Redis layout: a sorted set at `behavior_usage:{endpoint_id}:{client_ip}`, updated by the same
Lua window as rate limits (every use recorded, at most threshold + 1 kept). Memory fallback:
a bounded window per pair; during an outage, counts are kept as `rate_limit_outage_policy`
says (shared out between the instances by default) and written into Redis afterwards.
"""

from __future__ import annotations

from guard_core._shared.addresses import parse_ip
from guard_core._shared.keys import BEHAVIOR_USAGE, encode_key_part
from guard_core._shared.validation import check_count, check_seconds, check_text
from guard_core.models import SecurityConfig

from ..connection.manager import RedisManager
from ..storage.state_store import StateStore
from ..storage.window_store import SlidingWindowStore


class BehaviorTracker:
    """Counts uses of an endpoint by a client and reports when a threshold is exceeded."""

    def __init__(
        self,
        config: SecurityConfig,
        redis_handler: RedisManager | None = None,
        *,
        store: StateStore | None = None,
    ) -> None:
        self.config = config
        self._store = SlidingWindowStore(
            config, redis_handler, BEHAVIOR_USAGE, config.behavior_max_tracked, store=store
        )

    @property
    def memory_evictions(self) -> int:
        """Counts the memory fallback dropped to stay within its bound (see `health()`)."""
        return self._store.evictions

    async def track_usage(
        self, endpoint_id: str, client_ip: str, *, threshold: int, window: float
    ) -> bool:
        """Record one use; True when the client used the endpoint more than `threshold`
        times in the last `window` seconds."""
        endpoint = encode_key_part(check_text("endpoint_id", endpoint_id))
        key = f"{endpoint}:{parse_ip(client_ip)}"  # the first ':' ends the endpoint
        threshold = check_count("threshold", threshold)
        window = check_seconds("window", window)
        result = await self._store.hit(key, threshold, window, record_always=True)
        return result.count > threshold
