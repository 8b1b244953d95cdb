"""In-memory IP and network bans: the fallback when Redis is unavailable, and the record of
bans this instance made that Redis has not confirmed yet."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace

from cachetools import TTLCache

from guard_core.ip_utils import IPAddress, IPNetwork
from guard_core.validation import MAX_TTL


@dataclass(frozen=True)
class BanRecord:
    """One ban: an address or a CIDR, until `expires_at` (Unix time)."""

    target: str
    expires_at: float
    reason: str = ""
    #: False while the ban exists only in this instance's memory (Redis failed or disabled).
    shared: bool = False

    @property
    def is_network(self) -> bool:
        return "/" in self.target

    def remaining(self, now: float | None = None) -> float:
        return self.expires_at - (time.time() if now is None else now)


class MemoryBanStore:
    """Bans kept in a bounded `TTLCache` (addresses) and a dict (networks); thread-safe."""

    def __init__(self, max_entries: int) -> None:
        # Each record carries its own expiry; the cache's TTL is only the outer bound.
        self._addresses: TTLCache[str, BanRecord] = TTLCache(maxsize=max_entries, ttl=MAX_TTL)
        self._networks: dict[IPNetwork, BanRecord] = {}
        self._lock = threading.Lock()

    def add(self, record: BanRecord, network: IPNetwork | None = None) -> None:
        with self._lock:
            if network is None:
                self._addresses[record.target] = record
            else:
                self._networks[network] = record

    def remove(self, target: str, network: IPNetwork | None = None) -> BanRecord | None:
        with self._lock:
            if network is None:
                return self._addresses.pop(target, None)
            return self._networks.pop(network, None)

    def mark_shared(self, record: BanRecord, network: IPNetwork | None = None) -> None:
        """Note that Redis now holds `record` (unless it was replaced meanwhile)."""
        with self._lock:
            if network is None:
                if self._addresses.get(record.target) == record:
                    self._addresses[record.target] = replace(record, shared=True)
            elif self._networks.get(network) == record:
                self._networks[network] = replace(record, shared=True)

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
        with self._lock:
            for network, record in list(self._networks.items()):
                if record.expires_at <= now:
                    del self._networks[network]
                elif address.version == network.version and address in network:
                    return record
            return None

    def records(self, now: float | None = None) -> list[BanRecord]:
        now = time.time() if now is None else now
        with self._lock:
            found = list(self._addresses.values()) + list(self._networks.values())
        return [record for record in found if record.expires_at > now]
