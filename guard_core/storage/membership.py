"""`Membership`: which instances are alive, told by heartbeats into Redis.

An instance is one `Guard` (one `StateStore`). `Guard.start()` sends the first heartbeat
before it returns, and a first heartbeat is announced on the invalidation channel, so that
the others count again at once; then, while Redis answers, the store's background
flusher sends this instance's heartbeat on every tick (no round trip on the request path):
its id scored by the server's time in the sorted set `members:instances`, from which
instances silent for `rate_limit_member_timeout` seconds are dropped. The live count and
this instance's place among them, as last seen, split rate limits during an outage
(`guard_core._shared.storage.outage_windows`). A closing instance leaves the set at once.
"""

from __future__ import annotations

import math
import uuid

from guard_core._shared.keys import INSTANCES, MEMBERS
from guard_core._shared.logs import get_logger
from guard_core._shared.storage.lua_scripts import MEMBERSHIP
from guard_core._shared.storage.outage_windows import Members
from guard_core._shared.storage.outcomes import UNAVAILABLE, Unavailable

from .topics import Store


class Membership:
    """This instance's heartbeat, and the live instances it last saw."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.logger = get_logger("store")
        #: This instance's id in the set of live instances.
        self.instance_id = uuid.uuid4().hex
        #: The live instances as last seen (only this one until a heartbeat is answered).
        self.members = Members()
        self._timeout_ms = max(1, math.ceil(store.config.rate_limit_member_timeout * 1000))
        self._joined = False
        # an instance that joins tells the others, which count again at once
        store.invalidations.follow(MEMBERS, self._follow)

    async def beat(self) -> Members | Unavailable:
        """Send the heartbeat; the live instances now, or `UNAVAILABLE` (the last seen
        stay in use)."""
        if not self._store.sharing:
            return UNAVAILABLE
        reply = await self._store.script(
            MEMBERSHIP, [(MEMBERS, INSTANCES)], [self.instance_id, self._timeout_ms, "beat"]
        )
        if isinstance(reply, Unavailable):
            return UNAVAILABLE
        live, rank = reply
        members = Members(count=max(1, int(live)), rank=int(rank))
        if members.count != self.members.count:
            self.logger.info("Live instances sharing rate limits: %d", members.count)
        self.members = members
        if not self._joined:
            self._joined = True
            await self._store.invalidations.publish(MEMBERS, self.instance_id)
        return members

    async def _follow(self, _target: str) -> None:
        """An instance joined (or the subscription is back): count the live ones now."""
        await self.beat()

    async def leave(self) -> None:
        """Leave the live instances at once (the guard closes): the others' share grows at
        their next heartbeat instead of after the timeout. Best effort."""
        self._joined = False
        if self._store.sharing:
            await self._store.script(
                MEMBERSHIP, [(MEMBERS, INSTANCES)], [self.instance_id, self._timeout_ms, "leave"]
            )

    async def tick(self) -> None:
        """The flusher's task: one heartbeat (a failure is noted by the manager)."""
        await self.beat()
