"""The shared allow list in Redis (journal topic `allow`), and the copy each instance holds.

Layout (`{prefix}` omitted), the network-ban index's shape under namespaces of its own:
`allowed_ips:index`, a hash target -> record (`{"expires_at", "banned_at", "reason", "by"}`,
`banned_at` being when the entry was made; a removal is `{"lifted_at"}`) with `#version`
counting changes; `allowed_ips_expiry:index`, a sorted set target -> when its record ends.
`lua/network_ban_write.lua` writes both, the later change winning, so that an entry and its
removal made on two instances during an outage settle the same way whatever the order in
which they are written back. A target is an address or a CIDR network.

The request path never waits on Redis for it: every check is answered from the copy held
here. The copy is read whole when the invalidation subscription is confirmed (at start,
and again after it dropped), after each change pushed from another instance, and on the
flusher's tick at most once per `redis_state_refresh_interval` (one HGET of the version, the
hash only when it moved). During an outage the copy last read keeps answering, with the
changes made here applied at once and written back when Redis answers. An instance that
starts while Redis is down holds an empty copy until it can read one: an entry is then
checked like any other client, never the other way round.
"""

from __future__ import annotations

import time

from guard_core._shared.addresses import IPAddress, parse_network
from guard_core._shared.keys import ALLOWED_EXPIRY, ALLOWED_IPS
from guard_core._shared.storage.journal import Change
from guard_core._shared.storage.memory_bans import BanRecord
from guard_core._shared.storage.network_index import NetworkIndex
from guard_core._shared.storage.outcomes import Unavailable, Written

from .network_bans import REMOVALS, NetworkBans
from .topics import ALLOW, Applied, Store

#: The end of an entry made without a duration: 9999-12-31 23:59:59 UTC.
FOREVER = 253_402_300_799.0
#: The actions of the topic's changes.
ADD, REMOVE = "allow", "remove"


class AllowListStorage:
    """The shared allow list of one store."""

    name = ALLOW
    label = "allow-list changes"
    cached = True

    def __init__(self, store: Store) -> None:
        self._store = store
        self._entries = NetworkBans(store, (ALLOWED_IPS, ALLOWED_EXPIRY))
        self._entries.after_read = self.reconcile
        #: Reads of the copy answered by Redis (a version found unchanged counts).
        self.reads = 0
        store.invalidations.on(ALLOW, self._changed_elsewhere)
        store.invalidations.follow(ALLOW, self.follow)

    # -- the copy --------------------------------------------------------------------------

    @property
    def index(self) -> NetworkIndex[BanRecord]:
        """The entries as last read, with the changes made here applied."""
        return self._entries.index

    def allows(self, address: IPAddress, now: float | None = None) -> bool:
        """Whether a live entry of the copy covers `address` (memory only)."""
        index = self._entries.index
        if not len(index):
            return False
        now = time.time() if now is None else now
        return any(record.expires_at > now for _, record in index.lookup(address))

    def entry(self, target: str, now: float | None = None) -> BanRecord | None:
        """The live entry of the copy for exactly `target` (canonical)."""
        record = self._entries.index.get(parse_network(target))
        now = time.time() if now is None else now
        return record if record is not None and record.expires_at > now else None

    # -- changes ---------------------------------------------------------------------------

    def add_change(self, target: str, expires_at: float, reason: str, by: str) -> Change:
        now = time.time()
        return Change(
            topic=ALLOW, target=target, action=ADD, at=now, keep_until=expires_at,
            data={"expires_at": expires_at, "reason": reason, "by": by},
        )  # fmt: skip

    def remove_change(self, target: str) -> Change:
        now = time.time()
        return Change(
            topic=ALLOW, target=target, action=REMOVE, at=now,
            keep_until=now + self._store.config.redis_lift_memory,
        )  # fmt: skip

    def apply_here(self, change: Change) -> None:
        """A change made here reaches the copy at once (while Redis cannot take it too)."""
        if change.action in REMOVALS:
            self._entries.lifted(change.target)
            return
        data = change.data
        self._entries.held(
            BanRecord(
                target=change.target,
                expires_at=float(data["expires_at"]),
                reason=str(data.get("reason", "")),
                banned_at=change.at,
                by=str(data.get("by", "")),
            )
        )

    async def write(self, change: Change, *, replay: bool) -> Applied:
        """Write an entry or its removal (the later change of a target wins in Redis)."""
        return await self._entries.write(change)

    # -- reads -----------------------------------------------------------------------------

    async def read(self) -> NetworkIndex[BanRecord] | Unavailable:
        """The entries Redis holds now (the copy is replaced by them, with the changes made
        here that Redis has not taken applied on top)."""
        return await self._entries.read(force=True)

    async def follow(self, _target: str) -> None:
        """A change made elsewhere (or the subscription confirmed): read the copy again."""
        await self._entries.read(force=True)

    async def tick(self) -> None:
        """The flusher's task: read the copy again when a refresh interval has passed and
        the version moved (a lost invalidation costs at most one interval)."""
        if self._store.invalidations.following:
            await self._entries.read()

    def _changed_elsewhere(self, target: str) -> None:
        self._entries.expire()

    async def reconcile(self) -> None:
        """After each read: apply on top the changes made here that Redis has not taken,
        and forget the entries made here that Redis no longer holds (removed elsewhere, or
        ended), so that a write-back after a restart does not bring them back. Never while
        a write-back is under way: Redis may then lack them because it lost them."""
        self.reads += 1
        store = self._store
        for change in store.journal.pending():
            if change.topic == ALLOW:
                self.apply_here(change)
        if not store.settled:
            return
        index = self._entries.index
        for change in store.journal.taken(ALLOW):
            if change.action == ADD and index.get(parse_network(change.target)) is None:
                store.settle(change, Written.SUPERSEDED)
