"""`IPBanManager`: address and network bans shared through Redis, kept in memory as fallback.

Redis layout: `banned_ips:{ip}` and `banned_networks:{cidr}`, each holding the ban's expiry
(Unix time) with a matching TTL. Addresses are canonical (`::ffff:1.2.3.4` is `1.2.3.4`).
"""

from __future__ import annotations

import logging
import math
import time

from guard_core.ban_store import BanRecord, MemoryBanStore
from guard_core.ip_utils import IPAddress, IPNetwork, is_loopback, parse_ip, parse_network
from guard_core.keys import key_in_namespace, validate_ttl
from guard_core.models import SecurityConfig
from guard_core.refresh import RefreshClaim
from guard_core.write_back import Replay, WriteBackSchedule

from .redis_handler import RedisManager, call_or_none

BANNED_IPS = "banned_ips"
BANNED_NETWORKS = "banned_networks"


def _parse_target(target: str) -> tuple[str, IPAddress | IPNetwork, IPNetwork | None]:
    if isinstance(target, str) and "/" in target:
        network = parse_network(target)
        return str(network), network, network
    address = parse_ip(target)
    return str(address), address, None


class IPBanManager:
    """Bans addresses and CIDR networks for a time; every instance on the same Redis agrees.

    When Redis is disabled, unreachable or failing, bans are made and checked in memory
    (`TTLCache`); bans only this instance holds are still enforced here once Redis returns.
    Network bans made by other instances are seen within `redis_state_refresh_interval`.
    """

    def __init__(self, config: SecurityConfig, redis_handler: RedisManager | None = None) -> None:
        self.config = config
        self.logger = logging.getLogger("guard_core.ip_ban")
        self._redis = redis_handler
        self._memory = MemoryBanStore(config.ip_ban_max_entries)
        self._shared_networks: list[IPNetwork] = []
        self._networks_refresh = RefreshClaim(config.redis_state_refresh_interval)
        # Writes Redis has not taken yet, replayed when it answers again (no lost writes).
        self._pending_bans: set[str] = set()
        self._pending_unbans: dict[str, str] = {}  # target -> namespace
        self._replaying = 0  # write-backs under way (while > 0 a Redis miss proves nothing)
        self._write_back_schedule = WriteBackSchedule(config.redis_state_refresh_interval)

    async def ban_ip(self, ip: str, duration: int | None = None, reason: str = "banned") -> bool:
        """Ban an address or CIDR for `duration` seconds; False (and a warning) for loopback."""
        target, parsed, network = _parse_target(ip)
        seconds = validate_ttl(
            self.config.ip_ban_default_duration if duration is None else duration, "duration"
        )
        assert seconds is not None
        if not isinstance(reason, str):
            raise TypeError(f"reason must be a str, not {type(reason).__name__}")
        if is_loopback(parsed):
            self.logger.warning("Refusing to ban %s: loopback would lock the operator out", target)
            return False
        await self._write_back()
        record = BanRecord(target=target, expires_at=time.time() + seconds, reason=reason)
        self._memory.add(record, network)
        self._pending_unbans.pop(target, None)
        await self._share(record, network)
        self.logger.info("Banned %s for %d s: %s", target, seconds, reason)
        return True

    async def unban_ip(self, ip: str) -> bool:
        """Lift the ban on an address or CIDR; whether there was one."""
        target, _, network = _parse_target(ip)
        await self._write_back()
        removed = self._memory.remove(target, network) is not None
        self._pending_bans.discard(target)
        namespace = BANNED_NETWORKS if network is not None else BANNED_IPS
        deleted = await self._unshare(namespace, target)
        if deleted is None and self._sharing:
            self._pending_unbans[target] = namespace
        return removed or bool(deleted)

    async def is_ip_banned(self, ip: str) -> bool:
        """Whether the address is banned, itself or through a banned network."""
        address = parse_ip(ip)
        text = str(address)
        await self._write_back()
        local_address = self._memory.address_ban(text)
        local_network = self._memory.network_ban(address)
        if any(r is not None and not r.shared for r in (local_address, local_network)):
            return True  # made here while Redis could not take it: Redis does not know it
        shared = await call_or_none(self._redis, lambda r: r.exists(BANNED_IPS, text))
        if shared is None:
            return local_address is not None or local_network is not None
        if shared:
            return True
        if local_address is not None and not await self._lifted_elsewhere(local_address):
            return True
        networks = await self._read_shared_networks()
        if networks is None:
            return local_network is not None
        return any(address.version == n.version and address in n for n in networks)

    async def list_bans(self) -> list[BanRecord]:
        """Every current ban, from Redis when reachable plus those only this instance holds."""
        await self._write_back()
        local = {record.target: record for record in self._memory.records()}
        merged = {t: r for t, r in local.items() if not r.shared}
        for namespace in (BANNED_IPS, BANNED_NETWORKS):
            shared = await self._read_namespace(namespace)
            if shared is None:
                return sorted(local.values(), key=lambda record: record.target)
            for target, value in shared.items():
                if value is None:  # expired between SCAN and MGET
                    continue
                known = local.get(target)
                merged[target] = BanRecord(
                    target=target,
                    expires_at=_as_float(value, known.expires_at if known else time.time()),
                    reason=known.reason if known else "",
                    shared=True,
                )
        return sorted(merged.values(), key=lambda record: record.target)

    @property
    def pending_writes(self) -> int:
        """Bans and unbans made here that Redis has not taken yet."""
        return len(self._pending_bans) + len(self._pending_unbans)

    @property
    def _sharing(self) -> bool:
        return self._redis is not None and self._redis.config.enable_redis

    async def _share(self, record: BanRecord, network: IPNetwork | None) -> bool:
        """Write one ban to Redis; whether Redis took it."""
        return await self._share_many([record]) == 1

    async def _share_many(self, records: list[BanRecord]) -> int:
        """Write bans to Redis with their remaining time, one round trip per namespace; how
        many Redis took. Until Redis has taken a ban (also when the call is cancelled) it
        counts as pending and is enforced here whatever Redis says."""
        if not self._sharing:
            return 0
        batches: dict[str, dict[str, tuple[str, int]]] = {BANNED_IPS: {}, BANNED_NETWORKS: {}}
        live: dict[str, BanRecord] = {}
        for record in records:
            seconds = math.ceil(record.remaining())
            if seconds < 1:
                continue  # expired meanwhile: not resurrected
            self._memory.set_shared(record, False, self._network_of(record))
            self._pending_bans.add(record.target)
            namespace = BANNED_NETWORKS if record.is_network else BANNED_IPS
            batches[namespace][record.target] = (repr(record.expires_at), seconds)
            live[record.target] = record
        taken = 0
        for namespace, entries in batches.items():
            if not entries:
                continue
            if not await self._store_batch(namespace, entries):
                continue
            for target in entries:
                record = live[target]
                self._memory.set_shared(record, True, self._network_of(record))
                self._pending_bans.discard(target)
                taken += 1
            if namespace == BANNED_NETWORKS:
                self._networks_refresh.expire()
        return taken

    async def _store_batch(self, namespace: str, entries: dict[str, tuple[str, int]]) -> bool:
        return bool(await call_or_none(self._redis, lambda r: r.set_many(namespace, entries)))

    @staticmethod
    def _network_of(record: BanRecord) -> IPNetwork | None:
        return parse_network(record.target) if record.is_network else None

    async def _lifted_elsewhere(self, record: BanRecord) -> bool:
        """Redis lacks an address ban this instance holds as shared: was it lifted elsewhere
        (then forget it), or did Redis lose it (then write it again and keep it)?"""
        if await self._write_back() or self._replaying:
            return False  # Redis restarted: the replay puts it back
        again = await call_or_none(self._redis, lambda r: r.exists(BANNED_IPS, record.target))
        if again is None or again:
            return False
        self._memory.remove_if(record)
        return True

    async def _unshare(self, namespace: str, target: str) -> int | None:
        deleted: int | None = await call_or_none(self._redis, lambda r: r.delete(namespace, target))
        if deleted is not None:
            self._pending_unbans.pop(target, None)
            if namespace == BANNED_NETWORKS:
                self._networks_refresh.expire()
        return deleted

    async def _write_back(self) -> bool:
        """Replay what Redis lacks: pending bans and unbans when it answers again, every ban
        this instance holds after a restart. True when a restart was replayed."""
        redis = self._redis
        if redis is None or not self._sharing:
            return False
        pending = bool(self._pending_bans or self._pending_unbans)
        replay = self._write_back_schedule.due(redis.recoveries, redis.restarts, pending=pending)
        if replay is None:
            return False
        restarted = replay is Replay.EVERYTHING
        self._replaying += 1
        try:
            for target, namespace in list(self._pending_unbans.items()):
                await self._unshare(namespace, target)
            held = self._memory.records()
            for target in self._pending_bans - {record.target for record in held}:
                self._pending_bans.discard(target)  # expired or evicted meanwhile
            await self._share_many([r for r in held if restarted or not r.shared])
        finally:
            self._replaying -= 1
        if restarted:
            self.logger.warning("Redis restarted: wrote %d bans held here again", len(held))
        return restarted

    async def _read_namespace(self, namespace: str) -> dict[str, object] | None:
        keys = await call_or_none(self._redis, lambda r: r.keys(f"{namespace}:*"))
        if keys is None:
            return None
        targets = [key_in_namespace(self.config.redis_prefix, namespace, k) for k in keys]
        values = await call_or_none(self._redis, lambda r: r.get_many(namespace, targets))
        if values is None:
            return None
        return dict(zip(targets, values, strict=True))

    async def _read_shared_networks(self) -> list[IPNetwork] | None:
        """Network bans in Redis, re-read at most once per refresh interval (by one caller:
        the others use the last list meanwhile); also forgets bans lifted elsewhere."""
        if not self._networks_refresh.claim():
            return self._shared_networks
        restarts = self._redis.restarts if self._redis is not None else 0
        keys = await call_or_none(self._redis, lambda r: r.keys(f"{BANNED_NETWORKS}:*"))
        if keys is None:
            return None
        networks = []
        for full_key in keys:
            cidr = key_in_namespace(self.config.redis_prefix, BANNED_NETWORKS, full_key)
            try:
                networks.append(parse_network(cidr))
            except ValueError:
                self.logger.warning("Ignoring malformed network ban key %r", full_key)
        self._shared_networks = networks
        await self._forget_lifted(set(networks), restarts)
        return networks

    async def _forget_lifted(self, shared_networks: set[IPNetwork], restarts: int) -> None:
        """Drop local copies of shared bans Redis no longer holds (lifted on another instance),
        so that a later replay cannot bring them back. Never right after a restart: then
        Redis lacks them because it lost them."""
        held = [record for record in self._memory.records() if record.shared]
        addresses = [record for record in held if not record.is_network]
        targets = [record.target for record in addresses]
        values = await call_or_none(self._redis, lambda r: r.get_many(BANNED_IPS, targets))
        redis = self._redis
        if (
            values is None
            or redis is None
            or self._replaying
            or redis.restarts != restarts
            or self._write_back_schedule.seen_restarts != redis.restarts
        ):
            return
        for record, value in zip(addresses, values, strict=True):
            if value is None:
                self._memory.remove_if(record)
        for record in held:
            if record.is_network:
                network = parse_network(record.target)
                if network not in shared_networks:
                    self._memory.remove_if(record, network)


def _as_float(value: object, default: float) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
