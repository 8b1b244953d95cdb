"""`StateStore`: the typed storage operations every subsystem uses, and the outage journal.

Reads answer a value, `None` (absent) or `UNAVAILABLE` (Redis disabled, down or failing).
Writes of shared state go through the journal: a change Redis cannot take now is kept and
written back when Redis answers again, by a background flusher (started by `Guard`) even if
no request comes, or at the latest when the guard closes. After Redis restarts without its
data, every change still in effect is written again. Conflicts between instances are settled
in Redis by when each change was made (Lua scripts under `guard_core/lua/`), never by the
order in which instances write back.

Redis layout written here (`{prefix}` omitted; see the README for Cluster mode):
- `banned_ips:{ip}`: JSON `{"expires_at", "banned_at", "reason"}`, expiring with the ban;
  `ban_lifts:{ip}`: when the ban was last lifted, kept `redis_lift_memory` seconds;
  `ban_index:addresses`: sorted set ip -> expiry, so that bans are listed without a SCAN.
- `banned_networks:index`: hash network -> ban or lift record, field `#version` counting
  changes; `banned_networks_expiry:index`: sorted set network -> when its record ends.
- `patterns:custom`: sorted JSON array; `pattern_changes:custom`: hash pattern -> time.
- documents (`security_headers:csp_config`, `cloud_ranges:{provider}`): JSON strings.
- sliding windows (`rate_limit:…`, `behavior_usage:…`): sorted sets.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from guard_core.ban_mirror import AddressMirror
from guard_core.ban_store import BanRecord
from guard_core.exceptions import GuardRedisError
from guard_core.ip_utils import IPAddress, parse_network
from guard_core.journal import Change, Journal
from guard_core.logs import get_logger
from guard_core.lua_scripts import (
    BAN_WRITE,
    DOCUMENT_WRITE,
    NETWORK_BAN_WRITE,
    PATTERN_WRITE,
    SLIDING_WINDOW,
    LuaScript,
)
from guard_core.models import SecurityConfig
from guard_core.network_index import NetworkIndex
from guard_core.outcome import UNAVAILABLE, Unavailable, Written
from guard_core.primitives import AsyncTicker
from guard_core.redaction import escape_control
from guard_core.refresh import RefreshClaim
from guard_core.sliding_window import WindowResult, next_hit_id
from guard_core.write_back import Replay, WriteBackSchedule

from ..handlers.redis_handler import SCAN_COUNT, RedisManager
from .invalidation import Invalidations

_window_result = tuple.__new__  # a WindowResult from its fields, without a call of __new__

BANNED_IPS = "banned_ips"
BAN_LIFTS = "ban_lifts"
BAN_INDEX = "ban_index"
ADDRESS_INDEX = "addresses"
#: `ban_index:version`: counts changes of the address index (a mirror that saw this count
#: lacks nothing).
INDEX_VERSION = "version"
#: Entries asked of Redis per ZSCAN step when the mirror is loaded.
MIRROR_STEP = 10_000
BANNED_NETWORKS = "banned_networks"
NETWORK_EXPIRY = "banned_networks_expiry"
NETWORK_INDEX = "index"
PATTERNS = "patterns"
PATTERN_CHANGES = "pattern_changes"
CUSTOM_KEY = "custom"
_VERSION_FIELD = "#version"

#: Topics of journalled changes.
BAN, PATTERN, DOCUMENT, WINDOW = "ban", "pattern", "document", "window"
#: Topics whose changes instances cache (and so are told of): windows and outage hits are
#: never cached, and publishing them would cost a round trip per key for no reader.
CACHED_TOPICS = frozenset({BAN, PATTERN, DOCUMENT})

#: How the shutdown warning names each topic's lost changes.
_TOPIC_NAMES = {
    BAN: "bans and lifts",
    PATTERN: "custom pattern changes",
    DOCUMENT: "configuration documents",
    WINDOW: "rate-limit window resets",
    "window_hits": "rate-limit hits counted during the outage",
}

Listener = Callable[[Change, Written], None]
#: Writes a change of a topic registered by another storage module (`add_topic`): an
#: `async def` answering an `Applied` (a plain `def` in the sync face).
Applier = Callable[[Change], Any]
#: A task of the background flusher (`add_tick_task`): an `async def` taking no argument.
TickTask = Callable[[], Any]

_STORES_LOCK = threading.Lock()


@dataclass(frozen=True)
class Applied:
    """What a write did: Redis took it, a later change superseded it, or it is kept for
    later; `changed`: Redis's state changed (a ban was lifted, a pattern list changed)."""

    written: Written
    changed: bool = False


class StateStore:
    """Typed operations on shared state over one `RedisManager` (or none: memory only).

    Subsystems built on the same manager share one store, hence one journal:
    `StateStore.of(config, manager)`.
    """

    def __init__(self, config: SecurityConfig, redis: RedisManager | None) -> None:
        self.config = config
        self.logger = get_logger("store")
        self._redis = redis
        self.journal = Journal()
        self._schedule = WriteBackSchedule(config.redis_state_refresh_interval)
        self._replaying = 0
        self._listeners: dict[str, list[Listener]] = {}
        self._ticker = AsyncTicker()
        self._networks: NetworkIndex[BanRecord] = NetworkIndex()
        # the index's `#version` as last read (`_versioned`: with the restarts seen then)
        self._networks_version: str | None = None
        self._networks_refresh = RefreshClaim(config.redis_state_refresh_interval)
        # reads of the network index run at once (a request's, the background follower's):
        # one installs only if begun after the last installed and after the last change
        # made here (`_network_reads` begun so far; the number of the last installed; the
        # count when this instance last lifted a network)
        self._network_lock = threading.Lock()
        self._network_reads = self._network_installed = self._network_lifted = 0
        #: Objects other storage modules keep per store (the outage share), so that they
        #: live and die with it.
        self.extensions: dict[str, object] = {}
        self._appliers: dict[str, Applier] = {}
        self._tick_tasks: list[TickTask] = []
        self._close_tasks: list[TickTask] = []
        # changes pushed by every instance: ban verdicts held here, caches dropped on change
        self.invalidations = Invalidations(redis if self.sharing else None, BAN)
        self.invalidations.on(BAN, self._ban_changed)
        #: Every address ban Redis holds, to answer during an outage (network bans: the
        #: network index held here).
        self.mirror = AddressMirror(config.ip_ban_mirror_max_entries)
        self.invalidations.follow(BAN, self._follow_ban)

    @classmethod
    def of(cls, config: SecurityConfig, redis: RedisManager | None) -> StateStore:
        """The store of `redis` for `config` (made on first use), or a memory-only one
        without a manager. Subsystems built from one config on one manager (as `Guard`
        builds them) share one store, hence one journal."""
        if redis is None:
            return cls(config, None)
        with _STORES_LOCK:
            # kept on the manager, so that stores live and die with it
            key = ("state_store", id(config))  # the store holds `config`: its id stays unique
            store = redis.attachments.get(key)
            if not isinstance(store, cls):
                store = cls(config, redis)
                redis.attachments[key] = store
            return store

    @property
    def sharing(self) -> bool:
        """Whether state is shared through Redis (a manager with Redis enabled)."""
        return (
            self._redis is not None and self._redis.config.enable_redis and self.config.enable_redis
        )

    @property
    def settled(self) -> bool:
        """No write-back under way and the last restart written back: a key Redis lacks was
        removed (lifted elsewhere, ended), not lost."""
        redis = self._redis
        return (
            redis is not None
            and self._replaying == 0
            and self._schedule.seen_restarts == redis.restarts
        )

    def subscribe(self, topic: str, listener: Listener) -> None:
        """Call `listener(change, written)` when a written-back change of `topic` is settled."""
        self._listeners.setdefault(topic, []).append(listener)

    def pending_writes(self) -> dict[str, int]:
        """Changes Redis has not taken yet, per topic."""
        return self.journal.pending_by_topic() if self.sharing else {}

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self, *, serving: bool = True) -> None:
        """Load the local copies of shared state (the ban mirror, the network bans, the
        custom patterns, the header configuration), send the first heartbeat, then start the
        background flusher and the invalidation subscription (`Guard.start()` calls this).
        With Redis down the copies stay empty (`health()` says so) and are loaded once a
        subscription is confirmed. `serving=False` (a tool such as the CLI, which serves
        no requests) keeps no copies and sends no heartbeat at start."""
        if self.sharing:
            self.invalidations.following = serving
            await self.invalidations.catch_up()
            self._ticker.start(self._tick, self.config.redis_journal_flush_interval)
            self.invalidations.start()

    async def close(self) -> None:
        """Stop the flusher, then write pending changes within `redis_close_flush_timeout`."""
        await self._ticker.stop()
        for task in self._close_tasks:
            await task()
        await self.invalidations.stop()
        redis = self._redis
        if redis is None or not self.sharing or not self.journal.has_pending:
            return
        deadline = time.monotonic() + self.config.redis_close_flush_timeout
        await redis.ping()  # lets a due probe find a Redis that came back
        for change in self.journal.pending():
            if time.monotonic() >= deadline:
                break
            applied = await self._apply(change, replay=True)
            if applied.written is Written.KEPT:
                break
            self._settle(change, applied.written)
        left = self.journal.pending_by_topic()
        if left:
            self.logger.warning(
                "Closing with %d changes Redis has not taken: they are lost (%s)",
                sum(left.values()),
                ", ".join(f"{_TOPIC_NAMES.get(t, t)}: {n}" for t, n in sorted(left.items())),
            )

    async def sync(self) -> bool:
        """Write back what Redis lacks, when due: pending changes once Redis answers again,
        every change in effect after a restart. Cheap when nothing is due. True when a
        restart was written back."""
        redis = self._redis
        if redis is None or not self.sharing:
            return False
        replay = self._schedule.due(
            redis.recoveries, redis.restarts, pending=self.journal.has_pending
        )
        if replay is None:
            return False
        restarted = replay is Replay.EVERYTHING
        if restarted:
            self.journal.reopen()  # Redis may hold none of it now
        changes = self.journal.pending()
        self._replaying += 1
        try:
            for change in changes:
                applied = await self._apply(change, replay=True)
                if applied.written is Written.KEPT:
                    break  # Redis is gone again: the schedule retries later
                self._settle(change, applied.written)
        finally:
            self._replaying -= 1
        if restarted and changes:
            self.logger.warning("Redis restarted: wrote %d changes held here again", len(changes))
        return restarted

    async def _tick(self) -> None:
        for task in self._tick_tasks:
            await task()
        redis = self._redis
        if redis is None or not len(self.journal):
            return
        await redis.ping()  # probes a Redis that is down; notices a restart on reconnection
        await self.sync()

    # -- journalled writes -----------------------------------------------------------------

    async def submit(self, change: Change) -> Applied:
        """Record `change` in the journal and write it; kept for later when Redis cannot."""
        if not self.sharing:
            return Applied(Written.KEPT)
        await self.sync()
        self.journal.record(change)
        applied = await self._apply(change, replay=False)
        self.journal.settle(change, applied.written)
        return applied

    def forget(self, topic: str, target: str) -> None:
        """Drop the journal's taken change of a thing known to be changed elsewhere since."""
        change = self.journal.latest(topic, target)
        if change is not None and not self.journal.is_pending(topic, target):
            self.journal.settle(change, Written.SUPERSEDED)

    def is_pending(self, topic: str, target: str) -> bool:
        return self.sharing and self.journal.is_pending(topic, target)

    def _settle(self, change: Change, written: Written) -> None:
        self.journal.settle(change, written)
        for listener in self._listeners.get(change.topic, ()):
            listener(change, written)

    async def _apply(self, change: Change, *, replay: bool) -> Applied:
        applied = await self._write(change, replay=replay)
        if change.topic == BAN:
            self._mirror_change(change, applied.written)
        if change.topic in CACHED_TOPICS:  # tell every instance (this one at once)
            if applied.written is Written.TAKEN:
                await self.invalidations.publish(change.topic, change.target)
            else:
                self.invalidations.apply(change.topic, change.target)
        return applied

    async def _write(self, change: Change, *, replay: bool) -> Applied:
        if change.topic == BAN:
            if "/" in change.target:
                return await self._apply_network_ban(change)
            return await self._apply_address_ban(change)
        if change.topic == PATTERN:
            keys = [(PATTERNS, CUSTOM_KEY), (PATTERN_CHANGES, CUSTOM_KEY)]
            reply = await self._script(
                PATTERN_WRITE, keys, [change.action, change.target, _t(change.at)]
            )
            return _applied(reply)
        if change.topic == DOCUMENT:
            namespace, _, name = change.target.partition(":")
            args = [change.data["document"], _t(change.at)]
            return _applied(await self._script(DOCUMENT_WRITE, [(namespace, name)], args))
        if change.topic == WINDOW:
            return await self._apply_window_reset(change, replay=replay)
        applier = self._appliers.get(change.topic)
        if applier is not None:
            applied: Applied = await applier(change)
            return applied
        raise ValueError(f"unknown journal topic {change.topic!r}")

    # -- bans -----------------------------------------------------------------------------

    def ban_change(self, record: BanRecord) -> Change:
        return Change(
            topic=BAN,
            target=record.target,
            action="ban",
            at=record.banned_at,
            keep_until=record.expires_at,
            data={"expires_at": record.expires_at, "reason": record.reason},
        )

    def lift_change(self, target: str, now: float | None = None) -> Change:
        now = time.time() if now is None else now
        return Change(
            topic=BAN, target=target, action="lift", at=now,
            keep_until=now + self.config.redis_lift_memory,
        )  # fmt: skip

    async def ban_exists(self, address: str) -> bool | Unavailable:
        """Whether Redis holds a ban of this very address."""
        found = await self._call(lambda r: r.exists(BANNED_IPS, address))
        return found if isinstance(found, Unavailable) else bool(found)

    async def address_ban_end(self, address: str) -> float | Unavailable | None:
        """When Redis's ban of this very address ends; None: no ban; 0.0: a ban whose record
        cannot be read (banned, end unknown)."""
        raw = await self._call(lambda r: r.get_key(BANNED_IPS, address))
        if raw is None or isinstance(raw, Unavailable):
            return raw
        record = _ban_record(address, raw, time.time())
        return 0.0 if record is None else record.expires_at

    # -- ban verdicts held here (kept true by invalidations) -------------------------------

    def cached_ban_verdict(self, address: str) -> bool | None:
        """The verdict held for `address` as given (None: none that can be trusted now)."""
        if self.journal.has_pending:
            return None  # a change Redis lacks: only the full check knows
        return self.invalidations.verdicts.get(address, self.invalidations.marks())

    def ban_verdict_ticket(self) -> int:
        """Take before the full check; give back to `remember_ban_verdict`."""
        return self.invalidations.verdicts.ticket()

    def remember_ban_verdict(self, address: str, banned: bool, until: float, ticket: int) -> None:
        """Hold a verdict the full check read from Redis, until `until` (at most one
        `redis_state_refresh_interval`, should an invalidation be lost)."""
        marks = self.invalidations.marks()
        if marks is None or self.journal.has_pending or not self.settled:
            return
        until = min(until, time.time() + self.config.redis_state_refresh_interval)
        self.invalidations.verdicts.put(address, banned, until, ticket, marks)

    # -- the mirror of every ban (answers during an outage) ---------------------------------

    def mirrored_ban(self, address: str, parsed: IPAddress) -> bool:
        """Whether the bans mirrored from Redis (as last seen, with the changes made here
        applied) ban `address`; for use while Redis cannot answer."""
        now = time.time()
        if self.mirror.banned_until(address, now) is not None:
            return True
        return any(record.expires_at > now for _, record in self._networks.lookup(parsed))

    def mirror_report(self) -> dict[str, Any]:
        synced = self.mirror.synced_at
        return {
            "ready": self.mirror.loaded,
            "address_bans": len(self.mirror),
            "network_bans": len(self._networks),
            "version": self.mirror.version,
            "age": round(time.time() - synced, 3) if synced else None,
            "evictions": self.mirror.evictions,
        }

    def _mirror_change(self, change: Change, written: Written) -> None:
        """A change made here: the mirror follows it at once (a lift even while Redis cannot
        take it, so that an outage does not bring the lifted ban back here)."""
        if change.action == "lift":
            if "/" in change.target:
                with self._network_lock:
                    self._network_lifted = self._network_reads  # reads begun so far: stale
                    self._networks.pop(parse_network(change.target))
            else:
                self.mirror.drop(change.target)
        elif written is Written.TAKEN and "/" not in change.target:
            self.mirror.put(change.target, change.keep_until)

    async def load_mirror(self) -> bool:
        """Read every address ban from the listing index (ZSCAN steps, no keyspace scan)
        into the mirror; whether Redis answered."""
        redis = self._redis
        if redis is None or not self.sharing:
            return False
        index_key = redis.full_key(BAN_INDEX, ADDRESS_INDEX)
        version_key = redis.full_key(BAN_INDEX, INDEX_VERSION)

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

        found = await self._call(lambda r: r.safe_operation(_read))
        if isinstance(found, Unavailable) or found is None:
            return False
        version, entries = self._versioned(found[0]), found[1]
        # a lift made here that Redis has not taken yet stands over what Redis holds
        lifted = {c.target for c in self.journal.pending() if c.topic == BAN and c.action == "lift"}
        self.mirror.replace(((a, end) for a, end in entries if a not in lifted), version)
        return True

    def _versioned(self, version: object) -> str | None:
        """A version read from Redis, with the restarts seen so far (a restarted Redis
        counts anew, so a count alone could match a copy it lost)."""
        redis = self._redis
        if version is None or redis is None:
            return None
        return f"{redis.restarts}:{version}"

    async def _follow_ban(self, target: str) -> None:
        """A ban changed elsewhere (or "": anything may have): bring the mirror up to date."""
        if not target or "/" in target:
            if not target:
                await self._check_mirror()
            await self.network_bans(force=True)
            # a check that ran meanwhile may have used the index held before: its verdict
            # goes, and the next check reads the index's version again
            self.invalidations.verdicts.invalidate()
            self._networks_refresh.expire()
            return
        # the version first: every change it counts was published, and its message read
        # before this one or still to come while the subscription holds
        version = await self._call(lambda r: r.get_key(BAN_INDEX, INDEX_VERSION))
        raw = await self._call(lambda r: r.get_key(BANNED_IPS, target))
        if isinstance(raw, Unavailable) or isinstance(version, Unavailable):
            return
        if not self.journal.is_pending(BAN, target):  # else a change made here stands
            record = None if raw is None else _ban_record(target, raw, time.time())
            if record is None:
                self.mirror.drop(target)
            else:
                self.mirror.put(target, record.expires_at)
        if self.mirror.loaded:
            self.mirror.checked(self._versioned(version))

    async def _check_mirror(self) -> None:
        """Compare the index's version with the mirror's: read it all again when it moved
        (changes were missed while the subscription was down)."""
        found = await self._call(lambda r: r.get_key(BAN_INDEX, INDEX_VERSION))
        if isinstance(found, Unavailable):
            return
        version = self._versioned(found)
        if self.mirror.loaded and version == self.mirror.version:
            self.mirror.checked(version)
            return
        await self.load_mirror()

    def _ban_changed(self, target: str) -> None:
        if not target or "/" in target:
            self._networks_refresh.expire()  # read the network index again on next use

    async def list_bans(self) -> list[BanRecord] | Unavailable:
        """Every ban in Redis, addresses and networks, read from the indexes (no SCAN)."""
        redis = self._redis
        if redis is None or not self.sharing:
            return UNAVAILABLE
        index_key = redis.full_key(BAN_INDEX, ADDRESS_INDEX)
        now = time.time()

        async def _candidates(conn: Any) -> list[str]:
            await conn.zremrangebyscore(index_key, "-inf", now)
            found: list[str] = await conn.zrangebyscore(index_key, now, "+inf")
            return found

        addresses = await self._call(lambda r: r.safe_operation(_candidates))
        if isinstance(addresses, Unavailable):
            return UNAVAILABLE
        values = await self._call(lambda r: r.get_many(BANNED_IPS, addresses)) if addresses else []
        if isinstance(values, Unavailable):
            return UNAVAILABLE
        records = [
            record
            for target, raw in zip(addresses, values or [], strict=True)
            if raw is not None and (record := _ban_record(target, raw, now)) is not None
        ]
        networks = await self.network_bans(force=True)
        if isinstance(networks, Unavailable):
            return UNAVAILABLE
        records.extend(record for _, record in networks.items() if record.expires_at > now)
        return sorted(records, key=lambda record: record.target)

    async def network_bans(self, *, force: bool = False) -> NetworkIndex[BanRecord] | Unavailable:
        """The network bans in Redis, as an index; re-read at most once per refresh interval
        (by one caller; the others use the copy held meanwhile), and only when changed."""
        if not self.sharing:
            return UNAVAILABLE
        if not self._networks_refresh.claim(force=force):
            return self._networks
        version = await self._call(
            lambda r: r.safe_operation(_hget, r.full_key(BANNED_NETWORKS, NETWORK_INDEX))
        )
        if isinstance(version, Unavailable):
            self._networks_refresh.expire()
            return UNAVAILABLE
        if version is not None and self._versioned(version) == self._networks_version:
            await self._reconcile_bans()
            return self._networks
        with self._network_lock:
            self._network_reads += 1
            number = self._network_reads
        raw = await self._call(
            lambda r: r.safe_operation(_hgetall, r.full_key(BANNED_NETWORKS, NETWORK_INDEX))
        )
        if isinstance(raw, Unavailable):
            self._networks_refresh.expire()
            return UNAVAILABLE
        index: NetworkIndex[BanRecord] = NetworkIndex()
        now = time.time()
        for cidr, value in raw.items():
            if cidr == _VERSION_FIELD:
                continue
            record = _ban_record(cidr, value, now)
            if record is None:
                continue
            try:
                index.set(parse_network(cidr), record)
            except ValueError:
                self.logger.warning("Ignoring malformed network ban %s", escape_control(cidr))
        with self._network_lock:
            if number <= max(self._network_installed, self._network_lifted):
                return self._networks  # a read begun later, or a lift made here, came first
            self._network_installed = number
            self._networks = index
            self._networks_version = self._versioned(raw.get(_VERSION_FIELD))
        await self._reconcile_bans()
        return index

    async def _reconcile_bans(self) -> None:
        """Forget the bans this instance made that Redis no longer holds (lifted elsewhere,
        or ended), so that no write-back after a restart brings them back. Never while a
        write-back is under way: then Redis may lack them because it lost them."""
        if not self.settled:
            return
        held = self.journal.taken(BAN)
        addresses = [c for c in held if c.action == "ban" and "/" not in c.target]
        values = await self._call(
            lambda r: r.get_many(BANNED_IPS, [c.target for c in addresses])
        ) if addresses else []  # fmt: skip
        if isinstance(values, Unavailable) or not self.settled:
            return
        gone = [c for c, value in zip(addresses, values or [], strict=True) if value is None]
        gone.extend(
            c
            for c in held
            if c.action == "ban" and "/" in c.target and self._networks.get(
                parse_network(c.target)
            ) is None
        )  # fmt: skip
        for change in gone:
            self._settle(change, Written.SUPERSEDED)

    async def _apply_address_ban(self, change: Change) -> Applied:
        now = time.time()
        keys = [(BANNED_IPS, change.target), (BAN_LIFTS, change.target)]
        if change.action == "ban":
            ttl_ms = math.ceil((change.keep_until - now) * 1000)
            if ttl_ms < 1:
                return Applied(Written.SUPERSEDED)  # ended meanwhile: not brought back
            value = _ban_json(change)
            reply = await self._script(BAN_WRITE, keys, ["ban", _t(change.at), value, ttl_ms])
            if reply == 1:
                await self._index_address(change.target, change.keep_until)
        else:
            ttl_ms = max(1, math.ceil((change.keep_until - now) * 1000))
            reply = await self._script(BAN_WRITE, keys, ["lift", _t(change.at), "", ttl_ms])
            if isinstance(reply, int) and reply > 0:
                await self._index_address(change.target, None)
        return _applied(reply)

    async def _index_address(self, address: str, expires_at: float | None) -> None:
        """Keep the listing index in step (best effort: `list_bans` checks each entry)."""
        redis = self._redis
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

        version = await self._call(lambda r: r.safe_operation(_update))
        if isinstance(version, int) and self.mirror.version == self._versioned(version - 1):
            self.mirror.checked(self._versioned(version))  # no change of another came between

    async def _apply_network_ban(self, change: Change) -> Applied:
        now = time.time()
        if change.action == "ban":
            if change.keep_until <= now:
                return Applied(Written.SUPERSEDED)
            value = _ban_json(change)
        else:
            value = json.dumps({"lifted_at": change.at})
        keys = [(BANNED_NETWORKS, NETWORK_INDEX), (NETWORK_EXPIRY, NETWORK_INDEX)]
        args: list[str | int | float] = [
            change.action, _t(change.at), change.target, value, _t(change.keep_until), _t(now)
        ]  # fmt: skip
        reply = await self._script(NETWORK_BAN_WRITE, keys, args)
        if not isinstance(reply, Unavailable):
            self._networks_refresh.expire()  # read the index again on the next lookup
        return _applied(reply)

    # -- patterns and documents ------------------------------------------------------------

    def pattern_change(self, pattern: str, added: bool) -> Change:
        now = time.time()
        return Change(
            topic=PATTERN, target=pattern, action="add" if added else "remove", at=now,
            keep_until=math.inf if added else now + self.config.redis_lift_memory,
        )  # fmt: skip

    async def read_custom_patterns(self) -> str | Unavailable | None:
        """The stored JSON array of custom patterns (None: absent)."""
        return await self.get_document(PATTERNS, CUSTOM_KEY)

    def document_change(self, namespace: str, name: str, document: str, at: float) -> Change:
        return Change(
            topic=DOCUMENT, target=f"{namespace}:{name}", action="put", at=at,
            keep_until=math.inf, data={"document": document},
        )  # fmt: skip

    async def get_document(self, namespace: str, name: str) -> str | Unavailable | None:
        value = await self._call(lambda r: r.get_key(namespace, name))
        return value if value is None or isinstance(value, Unavailable) else str(value)

    async def set_document(
        self, namespace: str, name: str, value: str, ttl: int | None = None
    ) -> bool | Unavailable:
        """Store a cache document outright (no journal: it can be fetched again)."""
        done = await self._call(lambda r: r.set_key(namespace, name, value, ttl=ttl))
        return done if isinstance(done, Unavailable) else bool(done)

    # -- sliding windows -------------------------------------------------------------------

    async def window_hit(
        self,
        namespace: str,
        key: str,
        limit: int,
        window: float,
        *,
        record_always: bool,
        hit_id: str | None = None,
    ) -> WindowResult | Unavailable:
        """Prune, count and record one hit in a shared window (server clock); `hit_id`
        names the hit (its member: a hit written again later is counted once)."""
        window_ms = round(window * 1000)
        args = (
            limit,
            window_ms if window_ms > 1 else 1,
            next_hit_id() if hit_id is None else hit_id,
            "1" if record_always else "0",
        )
        reply = await self._script(SLIDING_WINDOW, ((namespace, key),), args)
        if isinstance(reply, Unavailable):
            return UNAVAILABLE
        allowed, count, reset_ms = reply
        reset_ms = int(reset_ms)
        return _window_result(
            WindowResult, (bool(allowed), int(count), reset_ms / 1000 if reset_ms > 0 else 0.0)
        )

    @property
    def sync_due(self) -> bool:
        """Whether `sync()` may have work now, told without awaiting: changes pending, or a
        recovery or restart of Redis it has not answered yet."""
        redis = self._redis
        if redis is None:
            return False
        return self.journal.has_pending or not self._schedule.answered(
            redis.recoveries, redis.restarts
        )

    def window_reset_change(self, namespace: str, key: str) -> Change:
        now = time.time()
        return Change(
            topic=WINDOW, target=f"{namespace}:{key}", action="reset", at=now,
            keep_until=now + self.config.redis_lift_memory, durable=False,
        )  # fmt: skip

    async def _apply_window_reset(self, change: Change, *, replay: bool) -> Applied:
        namespace, _, key = change.target.partition(":")
        if not replay:
            deleted = await self._call(lambda r: r.delete(namespace, key))
            return _applied(deleted, changed_if=lambda n: bool(n))
        # written back later: forget the hits made before the reset, keep those made since
        before_ms = math.floor(change.at * 1000)
        redis = self._redis
        if redis is None:
            return Applied(Written.KEPT)
        full_key = redis.full_key(namespace, key)

        async def _trim(conn: Any) -> int:
            removed: int = await conn.zremrangebyscore(full_key, "-inf", before_ms)
            return removed

        removed = await self._call(lambda r: r.safe_operation(_trim))
        return _applied(removed, changed_if=lambda n: bool(n))

    # -- extensions (other storage modules: `outage_hits`) ------------------------------------

    def add_topic(self, topic: str, apply: Applier) -> None:
        """Journal changes of `topic` too, written by `apply(change)`."""
        self._appliers[topic] = apply

    def add_tick_task(self, task: TickTask) -> None:
        """Run `await task()` on every tick of the background flusher, before its write-back."""
        self._tick_tasks.append(task)

    def add_close_task(self, task: TickTask) -> None:
        """Run `await task()` when the store closes, after the flusher stopped."""
        self._close_tasks.append(task)

    async def run_script(
        self, script: LuaScript, keys: Sequence[tuple[str, str]], args: Sequence[str | int | float]
    ) -> Any:
        """A Lua script's reply, or `UNAVAILABLE`."""
        return await self._script(script, keys, args)

    # -- calls -----------------------------------------------------------------------------

    async def _call(self, call: Callable[[RedisManager], Any]) -> Any:
        """`call(manager)`'s result, or `UNAVAILABLE` when Redis is not in use or failed (the
        manager has logged and reported the failure)."""
        redis = self._redis
        if redis is None or not redis.config.enable_redis:
            return UNAVAILABLE
        try:
            return await call(redis)
        except GuardRedisError:
            return UNAVAILABLE

    async def _script(
        self, script: LuaScript, keys: Sequence[tuple[str, str]], args: Sequence[str | int | float]
    ) -> Any:
        """The script's reply, or `UNAVAILABLE` as `_call` says (spelled out: every rate-limit
        check on Redis comes through here)."""
        redis = self._redis
        if redis is None or not redis.config.enable_redis:
            return UNAVAILABLE
        try:
            return await redis.run_script(script, keys, args)
        except GuardRedisError:
            return UNAVAILABLE


async def _hget(conn: Any, key: str) -> Any:
    return await conn.hget(key, _VERSION_FIELD)


async def _hgetall(conn: Any, key: str) -> dict[str, str]:
    """The whole hash, read in bounded steps (HSCAN): no single huge reply to wait for."""
    found: dict[str, str] = {}
    async for field, value in conn.hscan_iter(key, count=SCAN_COUNT):
        found[field] = value
    return found


def _t(value: float) -> str:
    """A time as Lua's tonumber reads it back exactly."""
    return repr(float(value))


def _ban_json(change: Change) -> str:
    return json.dumps(
        {
            "expires_at": change.data["expires_at"],
            "banned_at": change.at,
            "reason": change.data.get("reason", ""),
        }
    )


def _ban_record(target: str, raw: object, now: float) -> BanRecord | None:
    """A ban read from Redis, or None (a lift record, ended, malformed). An older layout
    holds only the expiry."""
    try:
        decoded = json.loads(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
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
    if expires_at <= now or not math.isfinite(expires_at):
        return None
    return BanRecord(
        target=target,
        expires_at=expires_at,
        reason=reason if isinstance(reason, str) else "",
        shared=True,
        banned_at=banned_at,
    )


def _applied(reply: object, changed_if: Callable[[Any], bool] | None = None) -> Applied:
    """A script's reply (0 superseded, 1 applied, 2 applied and changed) as an `Applied`."""
    if isinstance(reply, Unavailable):
        return Applied(Written.KEPT)
    if changed_if is not None:
        return Applied(Written.TAKEN, changed=changed_if(reply))
    code = int(reply)  # type: ignore[call-overload]
    if code == 0:
        return Applied(Written.SUPERSEDED)
    return Applied(Written.TAKEN, changed=code == 2)
