"""`IPBanManager`: address and network bans shared through Redis, kept in memory as fallback.

Policy only: what a ban is, who may be banned, and how local and shared knowledge combine.
Storage (the Redis layout, the network-ban index, writing back after an outage) lives in
`guard_core.storage`. Addresses are canonical (`::ffff:1.2.3.4` is `1.2.3.4`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable

from guard_core._shared.addresses import IPAddress, IPNetwork, is_loopback, parse_ip, parse_network
from guard_core._shared.keys import BANNED_IPS, BANNED_NETWORKS, validate_ttl
from guard_core._shared.logs import get_logger
from guard_core._shared.redaction import escape_control
from guard_core._shared.storage.journal import Change
from guard_core._shared.storage.memory_bans import BanRecord, MemoryBanStore
from guard_core._shared.storage.outcomes import Unavailable, Written
from guard_core.models import SecurityConfig

from ..connection.manager import RedisManager
from ..storage.bans import BULK_BATCH, BulkBan, BulkWritten
from ..storage.state_store import StateStore
from ..storage.topics import BAN

__all__ = ["BANNED_IPS", "BANNED_NETWORKS", "IPBanManager"]


def _parse_target(target: str) -> tuple[str, IPAddress | IPNetwork, IPNetwork | None]:
    if isinstance(target, str) and "/" in target:
        network = parse_network(target)
        return str(network), network, network
    address = parse_ip(target)
    return str(address), address, None


class IPBanManager:
    """Bans addresses and CIDR networks for a time; every instance on the same Redis agrees.

    When Redis is disabled, unreachable or failing, bans are made and checked in memory;
    bans Redis has not taken yet are enforced here and written back when it answers again.
    A lift made after a ban wins, and a ban made after a lift wins, whichever instance
    writes back first. Bans made elsewhere are seen on the next check once their
    invalidation arrives (see `is_ip_banned`), and within `redis_state_refresh_interval`
    without invalidations. During an outage every ban Redis held is still enforced, from the
    mirror each instance keeps (see `guard_core.storage.mirror`).
    """

    def __init__(
        self,
        config: SecurityConfig,
        redis_handler: RedisManager | None = None,
        *,
        store: StateStore | None = None,
    ) -> None:
        self.config = config
        self.logger = get_logger("ip_ban")
        self._store = StateStore.for_subsystem(config, redis_handler, store)
        self._bans = self._store.bans
        self._memory = MemoryBanStore(config.ip_ban_max_entries)
        self._store.subscribe(BAN, self._written_back)

    async def ban_ip(
        self, ip: str, duration: int | None = None, reason: str = "banned", *, by: str | None = None
    ) -> bool:
        """Ban an address or CIDR for `duration` seconds; False (and a warning) for loopback.
        `by` names who made it (default: this instance's id; the command says "cli")."""
        target, parsed, network = _parse_target(ip)
        seconds = validate_ttl(
            self.config.ip_ban_default_duration if duration is None else duration, "duration"
        )
        assert seconds is not None
        if not isinstance(reason, str):
            raise TypeError(f"reason must be a str, not {type(reason).__name__}")
        by = self._who(by)
        if is_loopback(parsed):
            self.logger.warning("Refusing to ban %s: loopback would lock the operator out", target)
            return False
        now = time.time()
        record = BanRecord(
            target=target, expires_at=now + seconds, reason=reason, banned_at=now, by=by
        )
        self._memory.add(record, network)
        applied = await self._store.submit(self._bans.ban_change(record))
        if applied.written is Written.SUPERSEDED:
            self.logger.warning(
                "Redis records a lift of %s later than this ban: clocks out of step?", target
            )
        self.logger.info("Banned %s for %d s: %s", target, seconds, escape_control(reason))
        return True

    async def ban_many(
        self,
        bans: Iterable[tuple[str, int | None, str]],
        *,
        by: str | None = None,
        batch_size: int = BULK_BATCH,
        progress: Callable[[int], object] | None = None,
    ) -> BulkWritten:
        """Ban many addresses and networks at once (an import): `(target, duration, reason)`
        each, `None` for `ip_ban_default_duration`. Every entry is checked first: a bad one
        (or loopback) raises `ValueError`/`TypeError` naming it, and nothing is written.
        Written in batches of `batch_size` (one round trip and one invalidation message
        each; `progress(done)` after each), every ban counting as made now: a lift made
        later wins. Needs Redis: neither journalled nor kept in this instance's memory, so
        what Redis did not take is counted `unwritten`, not written back later."""
        default = self.config.ip_ban_default_duration
        checked: list[BulkBan] = []
        for target, duration, reason in bans:
            canonical, parsed, _ = _parse_target(target)
            seconds = validate_ttl(default if duration is None else duration, "duration")
            assert seconds is not None
            if not isinstance(reason, str):
                raise TypeError(f"reason must be a str, not {type(reason).__name__}")
            if is_loopback(parsed):
                raise ValueError(f"refusing to ban {canonical}: loopback would lock you out")
            checked.append((canonical, seconds, reason))
        done = await self._bans.ban_many(
            checked, by=self._who(by), batch_size=batch_size, progress=progress
        )
        self.logger.info(
            "Banned %d targets in bulk (%d kept out by later changes, %d not written)",
            done.taken,
            done.superseded,
            done.unwritten,
        )
        return done

    def _who(self, by: str | None) -> str:
        if by is None:
            return self._store.instance_id
        if not isinstance(by, str):
            raise TypeError(f"by must be a str, not {type(by).__name__}")
        return by

    async def unban_ip(self, ip: str) -> bool:
        """Lift the ban on an address or CIDR; whether there was one."""
        target, _, network = _parse_target(ip)
        removed = self._memory.remove(target, network) is not None
        if not self._store.sharing:
            return removed
        applied = await self._store.submit(self._bans.lift_change(target))
        return removed or applied.changed

    async def is_ip_banned(self, ip: str) -> bool:
        """Whether the address is banned, itself or through a banned network.

        Answered from the verdicts held here, without Redis, while invalidations are
        received (see `guard_core.storage.invalidation`); read from Redis otherwise."""
        if isinstance(ip, str):
            cached = self._bans.cached_verdict(ip)
            if cached is not None:
                return cached
        ticket = self._bans.verdict_ticket()
        banned, until = await self._check(ip)
        if until is not None:
            self._bans.remember_verdict(ip, banned, until, ticket)
        return banned

    def is_ip_banned_now(self, ip: str) -> bool | None:
        """What `is_ip_banned(ip)` gives, told without awaiting from the verdicts held here,
        or None when it would read Redis (then await `is_ip_banned`)."""
        return self._bans.cached_verdict(ip) if isinstance(ip, str) else None

    async def _check(self, ip: str) -> tuple[bool, float | None]:
        """The verdict, and until when it holds if read from Redis (None: not to be held)."""
        address = parse_ip(ip)
        text = str(address)
        await self._store.sync()
        local_address = self._memory.address_ban(text)
        local_network = self._memory.network_ban(address)
        for record in (local_address, local_network):
            if record is not None and self._store.is_pending(BAN, record.target):
                return True, None  # made here while Redis could not take it: Redis lacks it
        shared = await self._bans.address_end(text)
        if isinstance(shared, Unavailable):
            # Redis cannot answer: this instance's bans, and those mirrored from Redis
            if local_address is not None or local_network is not None:
                return True, None
            return self._store.mirror.banned(text, address), None
        if shared is not None:
            return True, shared
        if local_address is not None and not await self._lifted_elsewhere(local_address):
            return True, None
        networks = await self._bans.networks.read()
        if isinstance(networks, Unavailable):
            return local_network is not None or self._store.mirror.banned(text, address), None
        now = time.time()
        ends = [record.expires_at for _, record in networks.lookup(address)]
        if any(end > now for end in ends):
            return True, max(ends)
        if local_network is not None and self._store.settled:
            self._forget(local_network)  # lifted elsewhere
        return False, math.inf

    async def list_bans(self) -> list[BanRecord]:
        """Every current ban, from Redis when reachable plus those only this instance holds."""
        await self._store.sync()
        local = {record.target: record for record in self._memory.records()}
        shared = await self._bans.list_bans()
        if isinstance(shared, Unavailable):
            return sorted(local.values(), key=lambda record: record.target)
        merged = {t: r for t, r in local.items() if self._store.is_pending(BAN, t)}
        for record in shared:
            merged.setdefault(record.target, record)
        return sorted(merged.values(), key=lambda record: record.target)

    @property
    def pending_writes(self) -> int:
        """Bans and unbans made here that Redis has not taken yet."""
        return self._store.pending_writes().get(BAN, 0)

    @property
    def memory_evictions(self) -> int:
        """Live bans the memory store evicted to stay within `ip_ban_max_entries`."""
        return self._memory.evictions

    async def _lifted_elsewhere(self, record: BanRecord) -> bool:
        """Redis lacks an address ban made here: was it lifted elsewhere (then forget it), or
        did Redis lose it (a restart being written back: keep it)?"""
        if await self._store.sync() or not self._store.settled:
            return False
        again = await self._bans.exists(record.target)  # the read may predate the replay
        if isinstance(again, Unavailable) or again or not self._store.settled:
            return False
        self._forget(record)
        return True

    def _forget(self, record: BanRecord) -> None:
        network = parse_network(record.target) if record.is_network else None
        self._memory.remove_if(record, network)
        self._store.forget(BAN, record.target)

    def _written_back(self, change: Change, written: Written) -> None:
        """A ban written back after an outage lost to a later lift: stop enforcing it."""
        if written is Written.SUPERSEDED and change.action == "ban":
            network = parse_network(change.target) if "/" in change.target else None
            self._memory.remove_if(
                BanRecord(target=change.target, expires_at=0.0, banned_at=change.at), network
            )
