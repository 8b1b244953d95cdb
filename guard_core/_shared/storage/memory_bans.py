"""In-memory IP and network bans: the fallback when Redis is unavailable, and this instance's
own bans (made here), which it enforces while Redis has not taken them.

Bounded: past `max_entries` addresses (or networks) the ban that expires first makes room,
ended bans before live ones. Evicting a live ban is counted (`evictions`) and logged once
per state change: one WARNING when the store fills, one when it has room again.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from guard_core._shared.addresses import IPAddress, IPNetwork
from guard_core._shared.logs import get_logger
from guard_core._shared.storage.journal import Change
from guard_core._shared.storage.network_index import NetworkIndex
from guard_core._shared.validation import parse_json

logger = get_logger("ip_ban")

K = TypeVar("K", bound=Hashable)

#: A full store has room again once it holds fewer than this share of its bound (so that a
#: store hovering at its bound does not log a pair of warnings per ban).
ROOM_AGAIN = 0.9


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
    #: Who made it: the instance id of the guard, or "cli" for the command ("": unknown,
    #: a ban of an older layout).
    by: str = ""

    @property
    def is_network(self) -> bool:
        return "/" in self.target

    def remaining(self, now: float | None = None) -> float:
        return self.expires_at - (time.time() if now is None else now)


def encode_ban(change: Change) -> str:
    """A ban change as Redis holds it: JSON `{"expires_at", "banned_at", "reason", "by"}`."""
    data = change.data
    return encode_record(data["expires_at"], change.at, data.get("reason", ""), data.get("by", ""))


def encode_record(
    expires_at: float,
    banned_at: float,
    reason: str,
    by: str,
    tails: dict[str, str] | None = None,
) -> str:
    """A ban record as Redis holds it, as `json.dumps` writes it; `tails` caches the part
    after the times per reason (a bulk write encodes many bans of few reasons)."""
    tail = None if tails is None else tails.get(reason)
    if tail is None:
        tail = f'{json.dumps(reason)}, "by": {json.dumps(by)}}}'
        if tails is not None:
            tails[reason] = tail
    times = f'{{"expires_at": {float(expires_at)!r}, "banned_at": {float(banned_at)!r}'
    return f'{times}, "reason": {tail}'


def decode_ban(target: str, raw: object, now: float) -> BanRecord | None:
    """A ban read from Redis, or None (a lift record, ended, malformed). Older layouts
    hold only the expiry, or no `by`."""
    try:
        decoded = parse_json(raw, "stored ban")  # type: ignore[arg-type]
    except ValueError:
        return None
    if isinstance(decoded, int | float):
        decoded = {"expires_at": decoded}
    if not isinstance(decoded, dict):
        return None
    try:
        expires_at = float(decoded["expires_at"])
        banned_at = float(decoded.get("banned_at", 0.0))
    except (KeyError, TypeError, ValueError):
        return None
    reason = decoded.get("reason", "")
    by = decoded.get("by", "")
    if expires_at <= now or not math.isfinite(expires_at):
        return None
    return BanRecord(
        target=target,
        expires_at=expires_at,
        reason=reason if isinstance(reason, str) else "",
        shared=True,
        banned_at=banned_at,
        by=by if isinstance(by, str) else "",
    )


class ExpiryBound(Generic[K]):
    """Keeps one kind of ban (addresses or networks) within `max_entries`, evicting the ban
    that expires first. Holds the order only; the bans stay where they are (`get`, `drop`,
    `size`, `entries` reach them). Not locked: its owner's lock covers it."""

    def __init__(
        self,
        kind: str,
        max_entries: int,
        *,
        get: Callable[[K], BanRecord | None],
        drop: Callable[[K], object],
        size: Callable[[], int],
        entries: Callable[[], Iterable[tuple[K, BanRecord]]],
    ) -> None:
        self.kind = kind
        self.max_entries = max_entries
        self._get, self._drop, self._size, self._entries = get, drop, size, entries
        # (expires_at, tie-break, key, record); an entry whose record was replaced or
        # removed meanwhile is stale and skipped
        self._heap: list[tuple[float, int, K, BanRecord]] = []
        self._order = itertools.count()
        self.evictions = 0
        self.full = False

    def added(self, key: K, record: BanRecord) -> None:
        heapq.heappush(self._heap, (record.expires_at, next(self._order), key, record))
        if len(self._heap) > 2 * self._size() + 1024:  # stale entries pile up: rebuild
            self._heap = [(r.expires_at, next(self._order), k, r) for k, r in self._entries()]
            heapq.heapify(self._heap)

    def make_room(self, now: float) -> None:
        """Before a new key is stored, when at the bound: drop every ended ban, then live
        ones, the one that expires first first."""
        if self._size() < self.max_entries:
            return
        while self._heap and self._heap[0][0] <= now:
            self._pop_live()
        while self._size() >= self.max_entries and self._heap:
            if self._pop_live():
                self.evictions += 1
                if not self.full:
                    self.full = True
                    logger.warning(
                        "Memory ban store full (%d %s bans): evicting the bans that expire "
                        "first; see ip_ban_max_entries",
                        self.max_entries,
                        self.kind,
                    )

    def check_room(self) -> None:
        if self.full and self._size() < self.max_entries * ROOM_AGAIN:
            self.full = False
            logger.warning(
                "Memory ban store has room again (%d of %d %s bans)",
                self._size(),
                self.max_entries,
                self.kind,
            )

    def _pop_live(self) -> bool:
        """Pop the heap's first entry; drop its ban if current. Whether one was dropped."""
        _, _, key, record = heapq.heappop(self._heap)
        if self._get(key) is record:
            self._drop(key)
            return True
        return False


class MemoryBanStore:
    """Bans kept in a dict (addresses) and a network index (lookups cost O(number of
    distinct prefix lengths)), each bounded by `max_entries`; thread-safe."""

    def __init__(self, max_entries: int) -> None:
        self._addresses: dict[str, BanRecord] = {}
        self._networks: NetworkIndex[BanRecord] = NetworkIndex()
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._address_bound: ExpiryBound[str] = ExpiryBound(
            "address",
            max_entries,
            get=self._addresses.get,
            drop=self._addresses.__delitem__,
            size=self._addresses.__len__,
            entries=self._addresses.items,
        )
        self._network_bound: ExpiryBound[IPNetwork] = ExpiryBound(
            "network",
            max_entries,
            get=self._networks.get,
            drop=self._networks.pop,
            size=self._networks.__len__,
            entries=self._networks.items,
        )

    @property
    def evictions(self) -> int:
        """Live bans evicted to stay within the bound, since this store was made."""
        return self._address_bound.evictions + self._network_bound.evictions

    @property
    def full(self) -> bool:
        """Whether the store is evicting live bans (until it has room again)."""
        return self._address_bound.full or self._network_bound.full

    def add(
        self, record: BanRecord, network: IPNetwork | None = None, *, now: float | None = None
    ) -> None:
        now = time.time() if now is None else now
        with self._lock:
            if network is None:
                if record.target not in self._addresses:
                    self._address_bound.make_room(now)
                self._addresses[record.target] = record
                self._address_bound.added(record.target, record)
                self._address_bound.check_room()
                return
            if self._networks.get(network) is None:
                self._network_bound.make_room(now)
            self._networks.set(network, record)
            self._network_bound.added(network, record)
            self._network_bound.check_room()

    def remove(self, target: str, network: IPNetwork | None = None) -> BanRecord | None:
        with self._lock:
            if network is None:
                found = self._addresses.pop(target, None)
                self._address_bound.check_room()
                return found
            found = self._networks.pop(network)
            self._network_bound.check_room()
            return found

    def remove_if(self, record: BanRecord, network: IPNetwork | None = None) -> None:
        """Remove `record`, unless a newer ban of the same target replaced it meanwhile."""
        with self._lock:
            if network is None:
                current = self._addresses.get(record.target)
                if current is not None and current.banned_at == record.banned_at:
                    del self._addresses[record.target]
                    self._address_bound.check_room()
                return
            found = self._networks.get(network)
            if found is not None and found.banned_at == record.banned_at:
                self._networks.pop(network)
                self._network_bound.check_room()

    def address_ban(self, address: str, now: float | None = None) -> BanRecord | None:
        now = time.time() if now is None else now
        with self._lock:
            record = self._addresses.get(address)
            if record is not None and record.expires_at <= now:
                del self._addresses[address]
                self._address_bound.check_room()
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
