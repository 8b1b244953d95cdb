"""In-memory IP and network bans: the fallback when Redis is unavailable, and the record of
bans this instance made that Redis has not confirmed yet."""

from __future__ import annotations

import threading
import time
from collections.abc import MutableMapping
from dataclasses import dataclass, replace
from typing import Any

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
    """Bans kept in a bounded `TTLCache` (addresses) and a bounded dict (networks);
    thread-safe."""

    def __init__(self, max_entries: int) -> None:
        # Each record carries its own expiry; the cache's TTL is only the outer bound.
        self._addresses: TTLCache[str, BanRecord] = TTLCache(maxsize=max_entries, ttl=MAX_TTL)
        self._networks: dict[IPNetwork, BanRecord] = {}
        self._max_entries = max_entries
        self._lock = threading.Lock()

    def add(self, record: BanRecord, network: IPNetwork | None = None) -> None:
        with self._lock:
            if network is None:
                self._addresses[record.target] = record
                return
            if network not in self._networks and len(self._networks) >= self._max_entries:
                # bounded like the addresses: the ban closest to expiry makes room
                soonest = min(self._networks, key=lambda n: self._networks[n].expires_at)
                del self._networks[soonest]
            self._networks[network] = record

    def remove(self, target: str, network: IPNetwork | None = None) -> BanRecord | None:
        with self._lock:
            if network is None:
                return self._addresses.pop(target, None)
            return self._networks.pop(network, None)

    def remove_if(self, record: BanRecord, network: IPNetwork | None = None) -> None:
        """Remove `record`, unless a newer ban of the same target replaced it meanwhile."""
        with self._lock:
            store, key = self._slot(record, network)
            current = store.get(key)
            if current is not None and current.expires_at == record.expires_at:
                del store[key]

    def set_shared(self, record: BanRecord, shared: bool, network: IPNetwork | None = None) -> None:
        """Note whether Redis holds `record` (unless a newer ban replaced it meanwhile)."""
        with self._lock:
            store, key = self._slot(record, network)
            current = store.get(key)
            if current is not None and current.expires_at == record.expires_at:
                store[key] = replace(current, shared=shared)

    def _slot(
        self, record: BanRecord, network: IPNetwork | None
    ) -> tuple[MutableMapping[Any, BanRecord], object]:
        if network is None:
            return self._addresses, record.target
        return self._networks, network

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
