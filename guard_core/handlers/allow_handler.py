"""`AllowListManager`: addresses and networks every instance lets through unchecked, shared
through Redis (the run-time twin of the adapters' `exempt_ips`).

Policy only; the Redis layout, the copy each instance holds and what happens during an
outage are in `guard_core.storage.allow_list`. A request from an entry is exempt, as from
`exempt_ips`: no ban, allow/deny list, cloud, user-agent, pattern or rate-limit check, and
no auto-ban. A forwarding chain past its bound is still refused (its address is a proxy's).
An instance that could not yet read the list (started while Redis was down) checks an
entry's clients like anyone: the list never lets through more than Redis says.
"""

from __future__ import annotations

import time

from guard_core._shared.addresses import IPAddress, canonical_target, parse_ip
from guard_core._shared.keys import ALLOWED_IPS, validate_ttl
from guard_core._shared.logs import get_logger
from guard_core._shared.redaction import escape_control
from guard_core._shared.storage.memory_bans import BanRecord
from guard_core._shared.storage.outcomes import Unavailable, Written
from guard_core.models import SecurityConfig

from ..connection.manager import RedisManager
from ..storage.allow_list import FOREVER
from ..storage.state_store import StateStore
from ..storage.topics import ALLOW

__all__ = ["ALLOWED_IPS", "FOREVER", "AllowListManager"]


class AllowListManager:
    """The shared allow list: entries are addresses or CIDR networks, for a time or with no
    end; every instance on the same Redis agrees, and checks answer from memory."""

    def __init__(
        self,
        config: SecurityConfig,
        redis_handler: RedisManager | None = None,
        *,
        store: StateStore | None = None,
    ) -> None:
        self.config = config
        self.logger = get_logger("allow_list")
        self._store = StateStore.for_subsystem(config, redis_handler, store)
        self._storage = self._store.allow_list

    async def allow(
        self,
        target: str,
        duration: int | None = None,
        reason: str = "",
        *,
        by: str | None = None,
    ) -> str:
        """Let `target` (an address or a CIDR) through unchecked on every instance, for
        `duration` seconds (None: until removed). Returns the canonical target. Made here at
        once; written to Redis now, or when it answers again."""
        canonical = canonical_target(target)
        seconds = validate_ttl(duration, "duration")
        if not isinstance(reason, str):
            raise TypeError(f"reason must be a str, not {type(reason).__name__}")
        if by is not None and not isinstance(by, str):
            raise TypeError(f"by must be a str, not {type(by).__name__}")
        expires_at = FOREVER if seconds is None else time.time() + seconds
        change = self._storage.add_change(
            canonical, expires_at, reason, by or self._store.instance_id
        )
        self._storage.apply_here(change)
        applied = await self._store.submit(change)
        if applied.written is Written.SUPERSEDED:
            self.logger.warning(
                "Redis records a removal of %s later than this entry: clocks out of step?",
                canonical,
            )
        self.logger.info(
            "Allowed %s %s: %s",
            canonical,
            "until removed" if seconds is None else f"for {seconds} s",
            escape_control(reason),
        )
        return canonical

    async def remove(self, target: str) -> bool:
        """Take `target` off the list on every instance; whether it was on it (here, or in
        Redis)."""
        canonical = canonical_target(target)
        held = self._storage.entry(canonical) is not None
        change = self._storage.remove_change(canonical)
        self._storage.apply_here(change)
        applied = await self._store.submit(change)
        if held or applied.changed:
            self.logger.info("Removed %s from the allow list", canonical)
        return held or applied.changed

    def is_allowed(self, ip: str | IPAddress) -> bool:
        """Whether an entry covers the address (from the copy held here: never waits)."""
        address = ip if not isinstance(ip, str) else parse_ip(ip)
        return self._storage.allows(address)

    async def list_entries(self) -> list[BanRecord]:
        """Every live entry: read from Redis when it answers (with the changes made here it
        has not taken), else the copy held here. `expires_at` is `FOREVER` for an entry
        without an end."""
        await self._store.sync()
        index = await self._storage.read()
        if isinstance(index, Unavailable):
            index = self._storage.index
        now = time.time()
        records = [record for _, record in index.items() if record.expires_at > now]
        return sorted(records, key=lambda record: record.target)

    @property
    def entries(self) -> int:
        """Live and ended entries of the copy held here (`health()` reports it)."""
        return len(self._storage.index)

    @property
    def pending_writes(self) -> int:
        """Entries and removals made here that Redis has not taken yet."""
        return self._store.pending_writes().get(ALLOW, 0)
