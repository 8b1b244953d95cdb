"""`AddressMirror`: every address ban Redis holds, copied here, to answer during an outage.

The storage layer fills it from the listing index at start (`ban_index:addresses`, read in
ZSCAN steps) and keeps it current from the pushed invalidations; it is consulted only when
Redis cannot answer, so that a ban made anywhere before an outage still holds during it.
Each entry is an address (as canonical text) and when its ban ends (Unix time): a ban that
ends during the outage ends here too.

Bounded: past `max_entries` the bans that end soonest are dropped (one WARNING per state
change, counted in `evictions`). An entry costs about 130 bytes (a dict slot, the address
text and a float), so the default bound of 1,048,576 bans is about 140 MB at most.
Thread-safe; nothing in it awaits, so both faces share it.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Iterable

from guard_core._shared.logs import get_logger

logger = get_logger("ip_ban")

#: Share of the bound kept when the mirror overflows (evictions come in batches).
ROOM_AFTER_EVICTION = 0.99


class AddressMirror:
    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, not {max_entries}")
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._ends: dict[str, float] = {}
        self._full = False
        #: Live bans dropped to stay within the bound, since start-up.
        self.evictions = 0
        #: Whether a full copy of Redis's bans was loaded (False until then: an instance
        #: started during an outage knows only its own bans).
        self.loaded = False
        #: When the copy was last checked against Redis (Unix time; 0.0: never).
        self.synced_at = 0.0
        #: Redis's version of the address bans as last read (None: unknown).
        self.version: str | None = None

    def __len__(self) -> int:
        return len(self._ends)

    def banned_until(self, address: str, now: float | None = None) -> float | None:
        """When the mirrored ban of `address` ends, if it still holds."""
        end = self._ends.get(address)
        if end is None or end <= (time.time() if now is None else now):
            return None
        return end

    def put(self, address: str, expires_at: float) -> None:
        with self._lock:
            self._ends[address] = expires_at
            if len(self._ends) > self._max_entries:
                self._evict()

    def drop(self, address: str) -> None:
        with self._lock:
            self._ends.pop(address, None)

    def replace(self, entries: Iterable[tuple[str, float]], version: str | None) -> None:
        """Take a full copy read from Redis (ended bans left out)."""
        now = time.time()
        fresh = {address: end for address, end in entries if end > now}
        with self._lock:
            self._ends = fresh
            if len(fresh) > self._max_entries:
                self._evict()
            elif self._full and len(fresh) < self._max_entries * ROOM_AFTER_EVICTION:
                self._full = False
            self.version = version
            self.loaded = True
            self.synced_at = now

    def checked(self, version: str | None) -> None:
        """Redis's version was read and matches the copy held."""
        self.version = version
        self.synced_at = time.time()

    def _evict(self) -> None:
        """Drop the bans that end soonest (caller holds the lock), ended ones first."""
        now = time.time()
        ended = [address for address, end in self._ends.items() if end <= now]
        for address in ended:
            del self._ends[address]
        excess = len(self._ends) - int(self._max_entries * ROOM_AFTER_EVICTION)
        if excess <= 0:
            return
        for address, _ in heapq.nsmallest(excess, self._ends.items(), key=lambda item: item[1]):
            del self._ends[address]
        self.evictions += excess
        if not self._full:
            self._full = True
            logger.warning(
                "Ban mirror full (%d address bans): dropping the bans that end soonest",
                self._max_entries,
            )
