"""Address and network bans in Redis (journal topic `ban`), the listing index, and the ban
verdicts each instance holds between invalidations.

Layout of address bans (`{prefix}` omitted; network bans: `network_bans`):
- `banned_ips:{ip}`: JSON `{"expires_at", "banned_at", "reason"}`, expiring with the ban;
- `ban_lifts:{ip}`: when the ban was last lifted, kept `redis_lift_memory` seconds
  (`lua/ban_write.lua` lets the later of a ban and a lift win);
- `ban_index:addresses`: sorted set ip -> expiry, so that bans are listed without a SCAN;
  `ban_index:version` counts its changes (a mirror that saw this count lacks nothing).

Bulk writes (`ban_many`) are in `bulk_bans`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from guard_core._shared.addresses import parse_network
from guard_core._shared.keys import (
    ADDRESS_INDEX,
    BAN_INDEX,
    BAN_LIFTS,
    BANNED_IPS,
    INDEX_VERSION,
)
from guard_core._shared.storage.journal import Change
from guard_core._shared.storage.lua_scripts import BAN_WRITE
from guard_core._shared.storage.memory_bans import BanRecord, decode_ban, encode_ban
from guard_core._shared.storage.outcomes import UNAVAILABLE, Unavailable, Written

from .bulk_bans import BULK_BATCH, BulkBan, BulkBans, BulkWritten
from .mirror import BanMirror
from .network_bans import NetworkBans
from .topics import BAN, Applied, Store, applied, lua_time

__all__ = [
    "ADDRESS_INDEX",
    "BAN",
    "BANNED_IPS",
    "BAN_INDEX",
    "BAN_LIFTS",
    "BULK_BATCH",
    "INDEX_VERSION",
    "BanStorage",
    "BulkBan",
    "BulkWritten",
]


class BanStorage:
    """The bans of one store."""

    name = BAN
    label = "bans and lifts"
    cached = True

    def __init__(self, store: Store, networks: NetworkBans, mirror: BanMirror) -> None:
        self._store = store
        self.networks = networks
        networks.after_read = self.reconcile
        self._mirror = mirror
        self._bulk = BulkBans(store, networks, mirror)
        store.invalidations.on(BAN, self._changed_elsewhere)

    # -- changes ---------------------------------------------------------------------------

    def ban_change(self, record: BanRecord) -> Change:
        return Change(
            topic=BAN,
            target=record.target,
            action="ban",
            at=record.banned_at,
            keep_until=record.expires_at,
            data={"expires_at": record.expires_at, "reason": record.reason, "by": record.by},
        )

    def lift_change(self, target: str, now: float | None = None) -> Change:
        now = time.time() if now is None else now
        return Change(
            topic=BAN, target=target, action="lift", at=now,
            keep_until=now + self._store.config.redis_lift_memory,
        )  # fmt: skip

    async def write(self, change: Change, *, replay: bool) -> Applied:
        write = self.networks.write if "/" in change.target else self._write_address
        done = await write(change)
        self._mirror.changed(change, done.written)
        return done

    async def _write_address(self, change: Change) -> Applied:
        now = time.time()
        keys = [(BANNED_IPS, change.target), (BAN_LIFTS, change.target)]
        store = self._store
        if change.action == "ban":
            ttl_ms = math.ceil((change.keep_until - now) * 1000)
            if ttl_ms < 1:
                return Applied(Written.SUPERSEDED)  # ended meanwhile: not brought back
            args: list[str | int | float] = ["ban", lua_time(change.at), encode_ban(change), ttl_ms]
            reply = await store.script(BAN_WRITE, keys, args)
            if reply == 1:
                await self._index_address(change.target, change.keep_until)
        else:
            ttl_ms = max(1, math.ceil((change.keep_until - now) * 1000))
            reply = await store.script(BAN_WRITE, keys, ["lift", lua_time(change.at), "", ttl_ms])
            if isinstance(reply, int) and reply > 0:
                await self._index_address(change.target, None)
        return applied(reply)

    async def _index_address(self, address: str, expires_at: float | None) -> None:
        """Keep the listing index in step (best effort: `list_bans` checks each entry)."""
        store = self._store
        redis = store.redis
        if redis is None:
            return
        key = redis.full_key(BAN_INDEX, ADDRESS_INDEX)
        version_key = redis.full_key(BAN_INDEX, INDEX_VERSION)

        async def _update(conn: Any) -> int:
            if expires_at is None:
                await conn.zrem(key, address)
            else:
                await conn.zadd(key, {address: expires_at})
            return int(await conn.incr(version_key))  # mirrors that missed it see it moved

        version = await store.call(lambda r: r.safe_operation(_update))
        if isinstance(version, int):
            self._mirror.moved(version)

    # -- bulk writes -----------------------------------------------------------------------

    async def ban_many(
        self,
        bans: Sequence[BulkBan],
        *,
        by: str,
        batch_size: int = BULK_BATCH,
        progress: Callable[[int], object] | None = None,
    ) -> BulkWritten:
        """Ban many canonical targets in batches: see `BulkBans.ban_many`."""
        return await self._bulk.ban_many(bans, by=by, batch_size=batch_size, progress=progress)

    def _changed_elsewhere(self, target: str) -> None:
        if not target or "/" in target:
            self.networks.expire()  # read the network index again on next use

    # -- reads -----------------------------------------------------------------------------

    async def exists(self, address: str) -> bool | Unavailable:
        """Whether Redis holds a ban of this very address."""
        found = await self._store.call(lambda r: r.exists(BANNED_IPS, address))
        return found if isinstance(found, Unavailable) else bool(found)

    async def address_end(self, address: str) -> float | Unavailable | None:
        """When Redis's ban of this very address ends; None: no ban; 0.0: a ban whose record
        cannot be read (banned, end unknown)."""
        raw = await self._store.call(lambda r: r.get_key(BANNED_IPS, address))
        if raw is None or isinstance(raw, Unavailable):
            return raw
        record = decode_ban(address, raw, time.time())
        return 0.0 if record is None else record.expires_at

    async def list_bans(self) -> list[BanRecord] | Unavailable:
        """Every ban in Redis, addresses and networks, read from the indexes (no SCAN)."""
        store = self._store
        redis = store.redis
        if redis is None or not store.sharing:
            return UNAVAILABLE
        index_key = redis.full_key(BAN_INDEX, ADDRESS_INDEX)
        now = time.time()

        async def _candidates(conn: Any) -> list[str]:
            await conn.zremrangebyscore(index_key, "-inf", now)
            found: list[str] = await conn.zrangebyscore(index_key, now, "+inf")
            return found

        addresses = await store.call(lambda r: r.safe_operation(_candidates))
        if isinstance(addresses, Unavailable):
            return UNAVAILABLE
        values = await store.call(lambda r: r.get_many(BANNED_IPS, addresses)) if addresses else []
        if isinstance(values, Unavailable):
            return UNAVAILABLE
        records = [
            record
            for target, raw in zip(addresses, values or [], strict=True)
            if raw is not None and (record := decode_ban(target, raw, now)) is not None
        ]
        networks = await self.networks.read(force=True)
        if isinstance(networks, Unavailable):
            return UNAVAILABLE
        records.extend(record for _, record in networks.items() if record.expires_at > now)
        return sorted(records, key=lambda record: record.target)

    async def reconcile(self) -> None:
        """Forget the bans this instance made that Redis no longer holds (lifted elsewhere,
        or ended), so that no write-back after a restart brings them back. Never while a
        write-back is under way: then Redis may lack them because it lost them."""
        store = self._store
        if not store.settled:
            return
        held = store.journal.taken(BAN)
        addresses = [c for c in held if c.action == "ban" and "/" not in c.target]
        values = await store.call(
            lambda r: r.get_many(BANNED_IPS, [c.target for c in addresses])
        ) if addresses else []  # fmt: skip
        if isinstance(values, Unavailable) or not store.settled:
            return
        gone = [c for c, value in zip(addresses, values or [], strict=True) if value is None]
        index = self.networks.index
        gone.extend(
            c
            for c in held
            if c.action == "ban" and "/" in c.target and index.get(parse_network(c.target)) is None
        )
        for change in gone:
            store.settle(change, Written.SUPERSEDED)

    # -- ban verdicts held here (kept true by invalidations) -------------------------------

    def cached_verdict(self, address: str) -> bool | None:
        """The verdict held for `address` as given (None: none that can be trusted now)."""
        store = self._store
        if store.journal.has_pending:
            return None  # a change Redis lacks: only the full check knows
        return store.invalidations.verdicts.get(address, store.invalidations.marks())

    def verdict_ticket(self) -> int:
        """Take before the full check; give back to `remember_verdict`."""
        return self._store.invalidations.verdicts.ticket()

    def remember_verdict(self, address: str, banned: bool, until: float, ticket: int) -> None:
        """Hold a verdict the full check read from Redis, until `until` (at most one
        `redis_state_refresh_interval`, should an invalidation be lost)."""
        store = self._store
        marks = store.invalidations.marks()
        if marks is None or store.journal.has_pending or not store.settled:
            return
        until = min(until, time.time() + store.config.redis_state_refresh_interval)
        store.invalidations.verdicts.put(address, banned, until, ticket, marks)
