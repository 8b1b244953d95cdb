"""The outage journal: changes Redis has not taken yet, and changes to write again after a
Redis restart, for every subsystem at once.

Each change is about one thing (a `topic` and a `target`: the ban of one address, one custom
pattern, one configuration document, one rate-limit window) and carries the wall-clock time
it was made. Only the latest change of each thing is kept. Redis settles conflicts between
instances by those times (see the Lua scripts), so the order in which instances write back
does not matter. Thread-safe; nothing in it awaits, so both faces share it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from guard_core._shared.logs import get_logger
from guard_core._shared.storage.outcomes import Written

logger = get_logger("journal")

#: A journal that overflowed has room again below this share of its bound.
ROOM_AGAIN = 0.9


@dataclass(frozen=True, eq=False)
class Change:
    """One change of shared state, as made on this instance."""

    topic: str
    target: str
    action: str
    #: Wall-clock time (Unix seconds) the change was made: later changes win.
    at: float
    #: After this time (Unix seconds) writing the change is pointless (a ban that ended).
    keep_until: float
    #: Kept after Redis took it, to be written again if Redis restarts without its data.
    durable: bool = True
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def slot(self) -> tuple[str, str]:
        return (self.topic, self.target)


@dataclass
class _Entry:
    change: Change
    pending: bool


class Journal:
    """The latest change of each thing, pending (Redis has not taken it) or taken."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._pending = 0
        self._max_entries = max_entries
        self._overflowing = False
        #: Pending changes dropped to stay within `max_entries` (writes lost), since made.
        self.evictions = 0

    @property
    def has_pending(self) -> bool:
        """Whether some change waits for Redis (a lock-free read for the hot path)."""
        return self._pending > 0

    def __len__(self) -> int:
        return len(self._entries)

    def record(self, change: Change) -> None:
        """Note a change made here, pending until `settle()` says Redis took it."""
        with self._lock:
            old = self._entries.get(change.slot)
            if old is not None and old.pending:
                self._pending -= 1
            self._entries[change.slot] = _Entry(change, pending=True)
            self._pending += 1
            if len(self._entries) > self._max_entries:
                self._make_room()

    def settle(self, change: Change, written: Written) -> None:
        """What Redis did with `change` (ignored if a later change of the same thing came)."""
        if written is Written.KEPT:
            return
        with self._lock:
            entry = self._entries.get(change.slot)
            if entry is None or entry.change is not change:
                return
            if entry.pending:
                self._pending -= 1
                entry.pending = False
            if written is Written.SUPERSEDED or not change.durable:
                del self._entries[change.slot]
                self._check_room()

    def reopen(self) -> int:
        """Mark every change pending again (Redis restarted without its data); how many."""
        with self._lock:
            for entry in self._entries.values():
                entry.pending = True
            self._pending = len(self._entries)
            return self._pending

    def taken(self, topic: str) -> list[Change]:
        """The changes of `topic` Redis has taken (and that still hold)."""
        with self._lock:
            return [
                e.change
                for e in self._entries.values()
                if e.change.topic == topic and not e.pending
            ]

    def latest(self, topic: str, target: str) -> Change | None:
        with self._lock:
            entry = self._entries.get((topic, target))
            return None if entry is None else entry.change

    def is_pending(self, topic: str, target: str) -> bool:
        with self._lock:
            entry = self._entries.get((topic, target))
            return entry is not None and entry.pending

    def pending(self, now: float | None = None) -> list[Change]:
        """Changes Redis has not taken, oldest first."""
        return self._select(now, pending_only=True)

    def everything(self, now: float | None = None) -> list[Change]:
        """Every change still worth writing (after a restart), oldest first."""
        return self._select(now, pending_only=False)

    def pending_by_topic(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self._lock:
            for entry in self._entries.values():
                if entry.pending:
                    counts[entry.change.topic] = counts.get(entry.change.topic, 0) + 1
        return counts

    def _select(self, now: float | None, *, pending_only: bool) -> list[Change]:
        now = time.time() if now is None else now
        with self._lock:
            for slot in [s for s, e in self._entries.items() if e.change.keep_until <= now]:
                if self._entries.pop(slot).pending:
                    self._pending -= 1
            self._check_room()
            chosen = [e.change for e in self._entries.values() if e.pending or not pending_only]
        return sorted(chosen, key=lambda change: change.at)

    def _make_room(self) -> None:
        """Drop one entry (caller holds the lock): a taken one first, the one that ends first."""
        taken = [e for e in self._entries.values() if not e.pending]
        victims = taken or list(self._entries.values())
        victim = min(victims, key=lambda e: e.change.keep_until)
        del self._entries[victim.change.slot]
        if victim.pending:
            self._pending -= 1
            self.evictions += 1
            if not self._overflowing:
                self._overflowing = True
                logger.warning(
                    "Outage journal full (%d changes): dropping the changes that end first",
                    self._max_entries,
                )

    def _check_room(self) -> None:
        """After entries left (caller holds the lock): one WARNING when a journal that was
        dropping pending changes has room again (below `ROOM_AGAIN` of its bound)."""
        if self._overflowing and len(self._entries) < self._max_entries * ROOM_AGAIN:
            self._overflowing = False
            logger.warning(
                "Outage journal has room again (%d of %d changes)",
                len(self._entries),
                self._max_entries,
            )
