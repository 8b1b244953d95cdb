"""Networks looked up by address in O(number of distinct prefix lengths), not O(networks).

Networks are grouped by (IP version, prefix length); an address is masked once per group
present and looked up in that group's dict. Thread-safe for one writer and many readers is
not enough here (the sync face runs threads), so writers and readers take a lock; lookups
copy nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Generic, TypeVar

from guard_core._shared.addresses import IPAddress, IPNetwork

V = TypeVar("V")

_BITS = {4: 32, 6: 128}


class NetworkIndex(Generic[V]):
    """A mapping network -> value with longest-prefix lookup of an address."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (version, prefix length) -> {network address as int: (network, value)}
        self._groups: dict[tuple[int, int], dict[int, tuple[IPNetwork, V]]] = {}
        # per version, the prefix lengths present, longest first (most specific match wins)
        self._lengths: dict[int, tuple[int, ...]] = {4: (), 6: ()}
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def set(self, network: IPNetwork, value: V) -> None:
        group_key = (network.version, network.prefixlen)
        with self._lock:
            group = self._groups.get(group_key)
            if group is None:
                group = self._groups[group_key] = {}
                self._relength(network.version)
            base = int(network.network_address)
            if base not in group:
                self._size += 1
            group[base] = (network, value)

    def pop(self, network: IPNetwork) -> V | None:
        group_key = (network.version, network.prefixlen)
        with self._lock:
            group = self._groups.get(group_key)
            if group is None:
                return None
            found = group.pop(int(network.network_address), None)
            if found is None:
                return None
            self._size -= 1
            if not group:
                del self._groups[group_key]
                self._relength(network.version)
            return found[1]

    def get(self, network: IPNetwork) -> V | None:
        group = self._groups.get((network.version, network.prefixlen))
        found = None if group is None else group.get(int(network.network_address))
        return None if found is None else found[1]

    def lookup(self, address: IPAddress) -> Iterator[tuple[IPNetwork, V]]:
        """The networks holding `address`, most specific first."""
        bits = _BITS[address.version]
        value = int(address)
        version = address.version
        for length in self._lengths[version]:
            group = self._groups.get((version, length))
            if group is None:  # removed meanwhile
                continue
            mask = ((1 << length) - 1) << (bits - length) if length else 0
            found = group.get(value & mask)
            if found is not None:
                yield found

    def items(self) -> list[tuple[IPNetwork, V]]:
        with self._lock:
            return [entry for group in self._groups.values() for entry in group.values()]

    def _relength(self, version: int) -> None:
        lengths = sorted((length for v, length in self._groups if v == version), reverse=True)
        self._lengths[version] = tuple(lengths)
