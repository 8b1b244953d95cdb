"""In-memory IP and network bans: the fallback when Redis is unavailable, and this instance's
own bans (made here), which it enforces while Redis has not taken them."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from cachetools import TTLCache

from guard_core.ip_utils import IPAddress, IPNetwork
from guard_core.network_index import NetworkIndex
from guard_core.validation import MAX_TTL


@dataclass(frozen=True)
class BanRecord:
    """One ban: an address or a CIDR, until `expires_at` (Unix time)."""

    target: str
    expires_at: float
    reason: str = ""
    #: True for a ban read from Redis (`list_bans`); False for one held in memory.
    shared: bool = False
    #: When the ban was made (Unix time): a lift made later wins over it, and vice versa.
    banned_at: float = 0.0

    @property
    def is_network(self) -> bool:
        return "/" in self.target

    def remaining(self, now: float | None = None) -> float:
        return self.expires_at - (time.time() if now is None else now)


class MemoryBanStore:
    """Bans kept in a bounded `TTLCache` (addresses) and a bounded network index (lookups
    cost O(number of distinct prefix lengths)); thread-safe."""

    def __init__(self, max_entries: int) -> None:
        # Each record carries its own expiry; the cache's TTL is only the outer bound.
        self._addresses: TTLCache[str, BanRecord] = TTLCache(maxsize=max_entries, ttl=MAX_TTL)
        self._networks: NetworkIndex[BanRecord] = NetworkIndex()
        self._max_entries = max_entries
        self._lock = threading.Lock()

    def add(self, record: BanRecord, network: IPNetwork | None = None) -> None:
        with self._lock:
            if network is None:
                self._addresses[record.target] = record
                return
            if self._networks.get(network) is None and len(self._networks) >= self._max_entries:
                # bounded like the addresses: the ban closest to expiry makes room
                soonest, _ = min(self._networks.items(), key=lambda item: item[1].expires_at)
                self._networks.pop(soonest)
            self._networks.set(network, record)

    def remove(self, target: str, network: IPNetwork | None = None) -> BanRecord | None:
        with self._lock:
            if network is None:
                return self._addresses.pop(target, None)
            return self._networks.pop(network)

    def remove_if(self, record: BanRecord, network: IPNetwork | None = None) -> None:
        """Remove `record`, unless a newer ban of the same target replaced it meanwhile."""
        with self._lock:
            if network is None:
                current = self._addresses.get(record.target)
                if current is not None and current.banned_at == record.banned_at:
                    del self._addresses[record.target]
                return
            found = self._networks.get(network)
            if found is not None and found.banned_at == record.banned_at:
                self._networks.pop(network)

    def address_ban(self, address: str, now: float | None = None) -> BanRecord | None:
        now = time.time() if now is None else now
        with self._lock:
            record = self._addresses.get(address)
            if record is not None and record.expires_at <= now:
                del self._addresses[address]
                return None
            return record

    def network_ban(self, address: IPAddress, now: float | None = None) -> BanRecord | None:
        now = time.time() if now is None else now
        for _, record in self._networks.lookup(address):
            if record.expires_at > now:
                return record
        return None

    def records(self, now: float | None = None) -> list[BanRecord]:
        now = time.time() if now is None else now
        with self._lock:
            found = list(self._addresses.values())
        found.extend(record for _, record in self._networks.items())
        return [record for record in found if record.expires_at > now]
