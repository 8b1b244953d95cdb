"""`OutageShare`: sliding windows while Redis is unavailable, split between instances, and
the hits counted meanwhile written into the shared windows once Redis answers again.

One per `StateStore` (hence per `Guard`): `store.outage`. Policy (`rate_limit_outage_policy`)
is applied by the window store of the subsystems; this module holds the storage side:
- the warm windows (`guard_core._shared.storage.outage_windows.OutageWindows`, one per
  namespace), fed by every Redis reply and used during an outage;
- the live instances (`membership.Membership`), refreshed by the background flusher;
- journal changes of topic `window_hits`: per window, the hits counted here during the
  outage, each with its id and time; written back by `lua/window_merge.lua`, which adds each
  hit once however often it is written.
"""

from __future__ import annotations

import math
import threading

from guard_core._shared.storage.journal import Change
from guard_core._shared.storage.lua_scripts import WINDOW_MERGE
from guard_core._shared.storage.memory_windows import WindowResult
from guard_core._shared.storage.outage_windows import Hit, OutageWindows
from guard_core._shared.storage.outcomes import Unavailable, Written

from .membership import Membership
from .topics import WINDOW_HITS, Applied, Store


class OutageShare:
    """The outage side of the sliding windows of one store; the storage of topic
    `window_hits`."""

    name = WINDOW_HITS
    label = "rate-limit hits counted during the outage"
    cached = False

    def __init__(self, store: Store) -> None:
        self._store = store
        self.membership = Membership(store)
        self._windows: dict[str, OutageWindows] = {}
        self._lock = threading.Lock()

    def windows(self, namespace: str, max_keys: int) -> OutageWindows:
        """The warm windows of `namespace` (made on first use, bounded to `max_keys`)."""
        with self._lock:
            found = self._windows.get(namespace)
            if found is None:
                found = self._windows[namespace] = OutageWindows(max_keys)
            return found

    def hit(
        self,
        windows: OutageWindows,
        namespace: str,
        key: str,
        limit: int,
        window: float,
        *,
        record_always: bool,
        hit_id: str | None = None,
        cost: int = 1,
    ) -> WindowResult:
        """Count one hit against this instance's share while Redis is unavailable; a
        recorded hit goes to the journal, to be written into the shared window later."""
        result, hits = windows.hit(
            key,
            limit,
            window,
            self.membership.members,
            record_always=record_always,
            hit_id=hit_id,
            cost=cost,
        )
        if hits is not None:
            self._journal(namespace, key, window, limit + 1 if record_always else 0, hits)
        return result

    def forget(self, namespace: str, key: str) -> None:
        """Drop the hits still to be written for a window that was reset."""
        journal = self._store.journal
        change = journal.latest(WINDOW_HITS, f"{namespace}:{key}")
        if change is not None:
            journal.settle(change, Written.SUPERSEDED)

    def _journal(
        self, namespace: str, key: str, window: float, keep: int, hits: tuple[Hit, ...]
    ) -> None:
        """Record the window's outage hits as one change (the latest holds them all)."""
        journal = self._store.journal
        target = f"{namespace}:{key}"
        newest = hits[-1].at
        known = {hit.id for hit in hits}
        earlier: tuple[Hit, ...] = ()
        previous = journal.latest(WINDOW_HITS, target)
        if previous is not None and journal.is_pending(WINDOW_HITS, target):
            # hits of an earlier outage Redis has not taken yet: keep them in this change
            earlier = tuple(
                hit
                for hit in previous.data["hits"]
                if hit.id not in known and hit.at > newest - window
            )
        journal.record(
            Change(
                topic=WINDOW_HITS, target=target, action="merge", at=newest,
                keep_until=newest + window, durable=False,
                data={"hits": earlier + hits, "window": window, "keep": keep},
            )
        )  # fmt: skip

    async def write(self, change: Change, *, replay: bool) -> Applied:
        namespace, _, key = change.target.partition(":")
        args: list[str | int | float] = [
            max(1, round(change.data["window"] * 1000)),
            change.data["keep"],
        ]
        for hit in change.data["hits"]:
            args.extend((hit.id, math.floor(hit.at * 1000)))
        reply = await self._store.script(WINDOW_MERGE, [(namespace, key)], args)
        if isinstance(reply, Unavailable):
            return Applied(Written.KEPT)
        return Applied(Written.TAKEN, changed=int(reply) > 0)
