"""Network bans in Redis, and the copy of their index each instance holds.

Layout (`{prefix}` omitted): `banned_networks:index`, a hash network -> ban or lift record
with the field `#version` counting changes; `banned_networks_expiry:index`, a sorted set
network -> when its record ends. `lua/network_ban_write.lua` writes both, the later change
winning. Every check of a network ban is answered from the copy held here, read again at
most once per `redis_state_refresh_interval`, and only when the version moved.

The shared allow list (`allow_list`) is an index of the same shape under namespaces of its
own (`allowed_ips`, `allowed_ips_expiry`): an entry there is a "ban" record, its removal a
lift, and addresses are held as /32 and /128 networks.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from guard_core._shared.addresses import parse_network
from guard_core._shared.keys import BANNED_NETWORKS, NETWORK_EXPIRY, NETWORK_INDEX
from guard_core._shared.redaction import escape_control
from guard_core._shared.storage.journal import Change
from guard_core._shared.storage.lua_scripts import NETWORK_BAN_WRITE
from guard_core._shared.storage.memory_bans import BanRecord, decode_ban, encode_ban
from guard_core._shared.storage.network_index import NetworkIndex
from guard_core._shared.storage.outcomes import UNAVAILABLE, Unavailable, Written
from guard_core._shared.storage.refresh_claim import RefreshClaim

from ..connection.operations import SCAN_COUNT
from .topics import Applied, Store, applied, lua_time

VERSION_FIELD = "#version"
#: The actions of a `Change` that remove a record (a ban's lift, an allow-list removal);
#: any other action sets one.
REMOVALS = frozenset({"lift", "remove"})


class NetworkBans:
    """The network bans of one store: written through the journal, read as an index.

    `namespaces`: the hash and the sorted set it keeps (another index of the same shape,
    the shared allow list, passes its own)."""

    def __init__(
        self, store: Store, namespaces: tuple[str, str] = (BANNED_NETWORKS, NETWORK_EXPIRY)
    ) -> None:
        self._store = store
        self._namespaces = namespaces
        #: Awaited after each read of the index (the bans module forgets, then, the bans
        #: made here that Redis no longer holds).
        self.after_read: Callable[[], Any] | None = None  # an `async def` in this face
        #: The index as last read (with the lifts made here since applied).
        self.index: NetworkIndex[BanRecord] = NetworkIndex()
        # the index's `#version` as last read (`versioned`: with the restarts seen then)
        self._version: str | None = None
        self._refresh = RefreshClaim(store.config.redis_state_refresh_interval)
        # reads of the index run at once (a request's, the background follower's): one
        # installs only if begun after the last installed and after the last change made
        # here (`_reads` begun so far; the number of the last installed; the count at the
        # last change)
        self._lock = threading.Lock()
        self._reads = self._installed = self._changed = 0

    def expire(self) -> None:
        """Read the index again on the next lookup."""
        self._refresh.expire()

    def lifted(self, target: str) -> None:
        """A lift made here: the network leaves the copy at once, and reads begun before it
        are stale (they may hold the ban)."""
        with self._lock:
            self._changed = self._reads
            self.index.pop(parse_network(target))

    def held(self, record: BanRecord) -> None:
        """A record set here: it is in the copy at once, and reads begun before are stale."""
        with self._lock:
            self._changed = self._reads
            self.index.set(parse_network(record.target), record)

    async def read(self, *, force: bool = False) -> NetworkIndex[BanRecord] | Unavailable:
        """The network bans in Redis, as an index; re-read at most once per refresh interval
        (by one caller; the others use the copy held meanwhile), and only when changed.
        `force`: read now, leaving the claim as it is (a read in the background, or for a
        listing, does not stop a check meanwhile from reading a changed index itself)."""
        store = self._store
        if not store.sharing:
            return UNAVAILABLE
        if not force and not self._refresh.claim():
            return self.index
        version = await store.call(
            lambda r: r.safe_operation(_hget, r.full_key(self._namespaces[0], NETWORK_INDEX))
        )
        if isinstance(version, Unavailable):
            self._refresh.expire()
            return UNAVAILABLE
        if version is not None and store.versioned(version) == self._version:
            await self._after_read()
            return self.index
        with self._lock:
            self._reads += 1
            number = self._reads
        raw = await store.call(
            lambda r: r.safe_operation(_hgetall, r.full_key(self._namespaces[0], NETWORK_INDEX))
        )
        if isinstance(raw, Unavailable):
            self._refresh.expire()
            return UNAVAILABLE
        index: NetworkIndex[BanRecord] = NetworkIndex()
        now = time.time()
        for cidr, value in raw.items():
            if cidr == VERSION_FIELD:
                continue
            record = decode_ban(cidr, value, now)
            if record is None:
                continue
            try:
                index.set(parse_network(cidr), record)
            except ValueError:
                store.logger.warning("Ignoring malformed network ban %s", escape_control(cidr))
        with self._lock:
            if number <= max(self._installed, self._changed):
                return self.index  # a read begun later, or a change made here, came first
            self._installed = number
            self.index = index
            self._version = store.versioned(raw.get(VERSION_FIELD))
        await self._after_read()
        return index

    async def _after_read(self) -> None:
        if self.after_read is not None:
            await self.after_read()

    async def write(self, change: Change) -> Applied:
        """Write a ban or a lift of a network (any record of the index, or its removal)."""
        now = time.time()
        setting = change.action not in REMOVALS
        if setting:
            if change.keep_until <= now:
                return Applied(Written.SUPERSEDED)  # ended meanwhile: not brought back
            value = encode_ban(change)
        else:
            value = json.dumps({"lifted_at": change.at})
        keys = [(name, NETWORK_INDEX) for name in self._namespaces]
        args: list[str | int | float] = [
            "ban" if setting else "lift", lua_time(change.at), change.target, value,
            lua_time(change.keep_until), lua_time(now),
        ]  # fmt: skip
        reply = await self._store.script(NETWORK_BAN_WRITE, keys, args)
        if not isinstance(reply, Unavailable):
            self._refresh.expire()  # read the index again on the next lookup
        return applied(reply)


async def _hget(conn: Any, key: str) -> Any:
    return await conn.hget(key, VERSION_FIELD)


async def _hgetall(conn: Any, key: str) -> dict[str, str]:
    """The whole hash, read in bounded steps (HSCAN): no single huge reply to wait for."""
    found: dict[str, str] = {}
    async for field, value in conn.hscan_iter(key, count=SCAN_COUNT):
        found[field] = value
    return found
