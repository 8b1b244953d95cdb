"""Bulk writes of bans (`ban_many`, the command's `bans import`).

They go in batches of `BULK_BATCH`: on one server one Lua call per batch
(`lua/ban_many.lua`, which updates the index in the same call), on a Cluster one pipeline of
`ban_write.lua` calls; networks in one `network_ban_many.lua`
call; and one invalidation message per batch, which followers apply without reloading their
mirror. Every ban of one bulk write counts as made when it began, so a lift made after that
wins over it (even over a later line of the same import). Bulk writes are not journalled: a
batch Redis cannot take is reported to the caller, not kept for later.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from guard_core._shared.concurrency import async_all_at_once
from guard_core._shared.keys import (
    ADDRESS_INDEX,
    BAN_INDEX,
    BAN_LIFTS,
    BANNED_IPS,
    BANNED_NETWORKS,
    INDEX_VERSION,
    NETWORK_EXPIRY,
    NETWORK_INDEX,
)
from guard_core._shared.storage.lua_scripts import BAN_WRITE, load_script
from guard_core._shared.storage.memory_bans import encode_record
from guard_core._shared.storage.outcomes import Unavailable

from .mirror import BanMirror
from .network_bans import NetworkBans
from .topics import BAN, Store, lua_time

#: Many address bans in one call, index included (one server): see `lua/ban_many.lua`.
BAN_MANY = load_script("ban_many")
#: Many network bans in one call: see `lua/network_ban_many.lua`.
NETWORK_BAN_MANY = load_script("network_ban_many")
#: Bans written per batch of a bulk write: one round trip (one Lua call on one server, a
#: pipeline on a Cluster) and one invalidation message each. A batch holds Redis for a few
#: milliseconds at most.
BULK_BATCH = 1000
#: Batches of a bulk write sent at once (tasks, or threads in the sync face): the next batch
#: is prepared while Redis runs the one before.
BULK_IN_FLIGHT = 2

#: One ban of a bulk write: the target (an address or a network, canonical), its duration
#: in whole seconds, its reason.
BulkBan = tuple[str, int, str]


@dataclass
class BulkWritten:
    """What a bulk write (`ban_many`) did."""

    #: Bans Redis took.
    taken: int = 0
    #: Bans a later change of the same target kept out (a lift made after the write began,
    #: a later ban, a later entry of the same target), or that ended before being written.
    superseded: int = 0
    #: Bans not written: Redis failed (they are not kept for later).
    unwritten: int = 0
    #: Batches written, each announced to every instance in one invalidation message.
    batches: int = 0


class BulkBans:
    """Bulk writes into the bans of one store."""

    def __init__(self, store: Store, networks: NetworkBans, mirror: BanMirror) -> None:
        self._store = store
        self.networks = networks
        self._mirror = mirror

    async def ban_many(
        self,
        bans: Sequence[BulkBan],
        *,
        by: str,
        batch_size: int = BULK_BATCH,
        progress: Callable[[int], object] | None = None,
    ) -> BulkWritten:
        """Ban many canonical targets (addresses and networks, checked by the caller) in
        batches of `batch_size`, `BULK_IN_FLIGHT` at once; every ban counts as made now (a
        lift made later wins). A target given twice is banned as its last entry says (the
        others count as superseded). `progress(done)` is called after each round of batches
        with the entries handled so far. Stops after the first round Redis did not wholly
        take: what it did not take is counted `unwritten`."""
        store = self._store
        latest = {ban[0]: ban for ban in bans}  # the last entry of each target
        unique = list(latest.values())
        result = BulkWritten(superseded=len(bans) - len(unique))
        if store.redis is None or not store.sharing:
            result.unwritten = len(unique)
            return result
        at = time.time()
        tails: dict[str, str] = {}  # the reason's part of the JSON record, once per reason
        size = max(1, batch_size)
        batches = [unique[first : first + size] for first in range(0, len(unique), size)]
        done = result.superseded
        for first in range(0, len(batches), BULK_IN_FLIGHT):
            round_ = batches[first : first + BULK_IN_FLIGHT]
            outcomes = await async_all_at_once(
                [functools.partial(self._ban_batch, batch, at, by, tails) for batch in round_]
            )
            for taken, superseded, unwritten in outcomes:
                result.taken += taken
                result.superseded += superseded
                result.unwritten += unwritten
                result.batches += taken > 0
            if any(unwritten for _, _, unwritten in outcomes):
                result.unwritten += sum(map(len, batches[first + BULK_IN_FLIGHT :]))
                break
            done += sum(map(len, round_))
            if progress is not None:
                progress(done)
        return result

    async def _ban_batch(
        self, batch: Sequence[BulkBan], at: float, by: str, tails: dict[str, str]
    ) -> tuple[int, int, int]:
        """One batch: its addresses, then its networks, then one invalidation message for
        what Redis took; (taken, superseded, unwritten)."""
        taken: list[str] = []
        superseded = unwritten = 0
        addresses = [ban for ban in batch if "/" not in ban[0]]
        networks = [ban for ban in batch if "/" in ban[0]]
        for part, write in ((addresses, self._ban_addresses), (networks, self._ban_networks)):
            if not part:
                continue
            written = None if unwritten else await write(part, at, by, tails)
            if written is None:
                unwritten += len(part)
                continue
            taken.extend(written)
            superseded += len(part) - len(written)
        if taken:
            await self._store.invalidations.publish_batch(BAN, taken)
        return len(taken), superseded, unwritten

    async def _ban_addresses(
        self, bans: Sequence[BulkBan], at: float, by: str, tails: dict[str, str]
    ) -> list[str] | None:
        """Write one batch of address bans; the addresses Redis took (None: it failed)."""
        store = self._store
        redis = store.redis
        assert redis is not None
        now = time.time()
        live: list[tuple[str, float, str, int]] = []  # address, end, record, ms kept
        for address, seconds, reason in bans:
            end = at + seconds
            ttl_ms = math.ceil((end - now) * 1000)
            if ttl_ms >= 1:  # else ended meanwhile: not written
                live.append((address, end, encode_record(end, at, reason, by, tails), ttl_ms))
        if not live:
            return []
        if redis.cluster:
            found = await store.call(lambda r: r.safe_operation(_cluster_bans, r, live, at))
            if isinstance(found, Unavailable) or found is None:
                return None
            taken, version = found
        else:
            keys: list[tuple[str, str]] = [(BAN_INDEX, ADDRESS_INDEX), (BAN_INDEX, INDEX_VERSION)]
            for address, _, _, _ in live:
                keys.append((BANNED_IPS, address))
                keys.append((BAN_LIFTS, address))
            lines = "\n".join(f"{a}\t{ms}\t{end!r}\t{record}" for a, end, record, ms in live)
            reply = await store.script(BAN_MANY, keys, [lua_time(at), lines])
            if isinstance(reply, Unavailable) or reply is None:
                return None
            codes, version = str(reply[0]), int(reply[1])
            taken = [entry for entry, code in zip(live, codes, strict=True) if code == "1"]
        mirror = self._mirror
        if store.invalidations.following:  # a tool that serves no requests keeps no mirror
            for address, end, _, _ in taken:
                mirror.addresses.put(address, end)
        if taken:
            mirror.moved(version)
        return [entry[0] for entry in taken]

    async def _ban_networks(
        self, bans: Sequence[BulkBan], at: float, by: str, tails: dict[str, str]
    ) -> list[str] | None:
        """Write one batch of network bans; the networks Redis took (None: it failed)."""
        now = time.time()
        args: list[str | int | float] = [lua_time(at), lua_time(now)]
        live: list[str] = []
        for network, seconds, reason in bans:
            end = at + seconds
            if end > now:
                live.append(network)
                args.extend((network, encode_record(end, at, reason, by, tails), lua_time(end)))
        if not live:
            return []
        keys = [(BANNED_NETWORKS, NETWORK_INDEX), (NETWORK_EXPIRY, NETWORK_INDEX)]
        reply = await self._store.script(NETWORK_BAN_MANY, keys, args)
        if isinstance(reply, Unavailable) or reply is None:
            return None
        self.networks.expire()  # read the index again on the next lookup
        return [network for network, code in zip(live, str(reply), strict=True) if code == "1"]


async def _cluster_bans(
    conn: Any, redis: Any, live: Sequence[tuple[str, float, str, int]], at: float
) -> tuple[list[tuple[str, float, str, int]], int]:
    """One batch of address bans on a Cluster: `ban_write.lua` per address, pipelined (the
    client sends each to its slot's node), then the listing index of those taken."""
    await conn.script_load(BAN_WRITE.source)  # on every primary (one may have failed over)
    when = lua_time(at)
    async with conn.pipeline(transaction=False) as pipe:
        for address, _, record, ttl_ms in live:
            ban_key = redis.full_key(BANNED_IPS, address)
            lift_key = redis.full_key(BAN_LIFTS, address)
            # (by name: redis-py blocks the evalsha method of a Cluster pipeline, though the
            # pipeline sends each EVALSHA to the node of its keys' slot)
            pipe.execute_command(
                "EVALSHA", BAN_WRITE.sha, 2, ban_key, lift_key, "ban", when, record, ttl_ms
            )
        replies = await pipe.execute()
    taken = [entry for entry, reply in zip(live, replies, strict=True) if reply == 1]
    version_key = redis.full_key(BAN_INDEX, INDEX_VERSION)
    if not taken:
        return taken, int(await conn.get(version_key) or 0)
    await conn.zadd(redis.full_key(BAN_INDEX, ADDRESS_INDEX), {e[0]: e[1] for e in taken})
    return taken, int(await conn.incr(version_key))
