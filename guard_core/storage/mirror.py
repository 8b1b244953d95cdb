"""The mirror of every ban Redis holds, kept by each serving instance to answer ban checks
while Redis cannot (`guard_core._shared.storage.address_mirror.AddressMirror` holds the
addresses; network bans are the index `network_bans` holds).

Loaded at start from the listing index `ban_index:addresses` (ZSCAN steps, never a keyspace
scan); kept current by the pushed invalidations (the background follower reads each changed
ban) and by the index's version `ban_index:version`, compared when the subscription comes
back: a mirror whose version moved meanwhile is read again whole. A batch of a bulk write
comes as one message, whose bans are read in one round trip (no reload). Changes made here
reach it at once, a lift even while Redis cannot take it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from guard_core._shared.addresses import IPAddress
from guard_core._shared.keys import ADDRESS_INDEX, BAN_INDEX, BANNED_IPS, INDEX_VERSION
from guard_core._shared.storage.address_mirror import AddressMirror
from guard_core._shared.storage.journal import Change
from guard_core._shared.storage.memory_bans import decode_ban
from guard_core._shared.storage.outcomes import Unavailable, Written

from .invalidation import batch_members
from .network_bans import NetworkBans
from .topics import BAN, Store

#: Entries asked of Redis per ZSCAN step when the mirror is loaded.
MIRROR_STEP = 10_000


class BanMirror:
    """The ban mirror of one store."""

    def __init__(self, store: Store, networks: NetworkBans) -> None:
        self._store = store
        self._networks = networks
        #: Every address ban Redis holds, as last seen.
        self.addresses = AddressMirror(store.config.ip_ban_mirror_max_entries)
        # loads may run at once (start's catch-up, a subscription's): one installs only if
        # begun after the last installed (loads begun so far; the number last installed)
        self._lock = threading.Lock()
        self._loads = self._loaded = 0
        #: Full loads installed (at start, after a subscription came back with the version
        #: moved); batches of bulk writes followed without one.
        self.loads = 0
        self.batches = 0
        store.invalidations.follow(BAN, self.follow)

    def banned(self, address: str, parsed: IPAddress) -> bool:
        """Whether the bans mirrored from Redis (as last seen, with the changes made here
        applied) ban `address`; for use while Redis cannot answer."""
        now = time.time()
        if self.addresses.banned_until(address, now) is not None:
            return True
        networks = self._networks.index
        return any(record.expires_at > now for _, record in networks.lookup(parsed))

    def report(self) -> dict[str, Any]:
        """What `health()` says of the mirror."""
        mirror = self.addresses
        synced = mirror.synced_at
        return {
            "ready": mirror.loaded,
            "address_bans": len(mirror),
            "network_bans": len(self._networks.index),
            "version": mirror.version,
            "age": round(time.time() - synced, 3) if synced else None,
            "evictions": mirror.evictions,
            "loads": self.loads,
        }

    def changed(self, change: Change, written: Written) -> None:
        """A change made here: the mirror follows it at once (a lift even while Redis cannot
        take it, so that an outage does not bring the lifted ban back here)."""
        if change.action == "lift":
            if "/" in change.target:
                self._networks.lifted(change.target)
            else:
                self.addresses.drop(change.target)
        elif written is Written.TAKEN and "/" not in change.target:
            self.addresses.put(change.target, change.keep_until)

    def moved(self, version: int) -> None:
        """The index's version after a change made here: the mirror is current still when
        no change of another instance came between."""
        store = self._store
        if self.addresses.version == store.versioned(version - 1):
            self.addresses.checked(store.versioned(version))

    async def load(self) -> bool:
        """Read every address ban from the listing index into the mirror; whether Redis
        answered."""
        store = self._store
        redis = store.redis
        if redis is None or not store.sharing:
            return False
        index_key = redis.full_key(BAN_INDEX, ADDRESS_INDEX)
        version_key = redis.full_key(BAN_INDEX, INDEX_VERSION)
        with self._lock:
            self._loads += 1
            number = self._loads

        async def _read(conn: Any) -> tuple[Any, list[tuple[str, float]]]:
            version = await conn.get(version_key)
            entries: list[tuple[str, float]] = []
            # ZSCAN in steps of MIRROR_STEP: few round trips, and no reply long enough to
            # hold Redis up
            cursor: Any = 0
            while True:
                cursor, step = await conn.zscan(index_key, cursor, count=MIRROR_STEP)
                entries.extend(step)
                if int(cursor) == 0:
                    break
            return version, entries

        found = await store.call(lambda r: r.safe_operation(_read))
        if isinstance(found, Unavailable) or found is None:
            return False
        version, entries = store.versioned(found[0]), found[1]
        # a lift made here that Redis has not taken yet stands over what Redis holds
        journal = store.journal
        lifted = {c.target for c in journal.pending() if c.topic == BAN and c.action == "lift"}
        with self._lock:
            if number < self._loaded:
                return True  # a load begun later installed first: it is the newer copy
            self._loaded = number
            self.addresses.replace(((a, end) for a, end in entries if a not in lifted), version)
            self.loads += 1
        return True

    async def follow(self, target: str) -> None:
        """A ban changed elsewhere (or "": anything may have): bring the mirror up to date."""
        store = self._store
        members = batch_members(target)
        if members is not None:
            await self._follow_batch(members)
            return
        if not target or "/" in target:
            if not target:
                await self.check()
            await self._follow_networks()
            return
        # the version first: every change it counts was published, and its message read
        # before this one or still to come while the subscription holds
        version = await store.call(lambda r: r.get_key(BAN_INDEX, INDEX_VERSION))
        raw = await store.call(lambda r: r.get_key(BANNED_IPS, target))
        if isinstance(raw, Unavailable) or isinstance(version, Unavailable):
            return
        if not store.journal.is_pending(BAN, target):  # else a change made here stands
            record = None if raw is None else decode_ban(target, raw, time.time())
            if record is None:
                self.addresses.drop(target)
            else:
                self.addresses.put(target, record.expires_at)
        if self.addresses.loaded:
            self.addresses.checked(store.versioned(version))

    async def _follow_networks(self) -> None:
        """The network index changed elsewhere: read it again."""
        networks = self._networks
        await networks.read(force=True)
        # a check that ran meanwhile may have used the index held before: its verdict goes,
        # and the next check reads the index's version again
        self._store.invalidations.verdicts.invalidate()
        networks.expire()

    async def _follow_batch(self, targets: list[str]) -> None:
        """A batch of a bulk write made elsewhere: its address bans read in one round trip,
        the network index again if it held networks; no full reload."""
        store = self._store
        addresses = [target for target in targets if "/" not in target]
        if len(addresses) < len(targets):
            await self._follow_networks()
        if not addresses:
            return
        version = await store.call(lambda r: r.get_key(BAN_INDEX, INDEX_VERSION))
        values = await store.call(lambda r: r.get_many(BANNED_IPS, addresses))
        if isinstance(values, Unavailable) or isinstance(version, Unavailable) or values is None:
            return
        now = time.time()
        journal = store.journal
        for address, raw in zip(addresses, values, strict=True):
            if journal.has_pending and journal.is_pending(BAN, address):
                continue  # a change made here stands
            record = None if raw is None else decode_ban(address, raw, now)
            if record is None:
                self.addresses.drop(address)
            else:
                self.addresses.put(address, record.expires_at)
        self.batches += 1
        if self.addresses.loaded:
            self.addresses.checked(store.versioned(version))

    async def check(self) -> None:
        """Compare the index's version with the mirror's: read it all again when it moved
        (changes were missed while the subscription was down)."""
        store = self._store
        found = await store.call(lambda r: r.get_key(BAN_INDEX, INDEX_VERSION))
        if isinstance(found, Unavailable):
            return
        version = store.versioned(found)
        if self.addresses.loaded and version == self.addresses.version:
            self.addresses.checked(version)
            return
        await self.load()
