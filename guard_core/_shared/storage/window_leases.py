"""Local quota leases on shared windows (`SecurityConfig.rate_limit_lease`).

With a lease fraction f above 0, an instance that keeps hitting one key of a limit L does
not send every hit to Redis: it records a block of hits in the shared window at once (a
lease, one script call) and admits the next requests from that block in memory, without a
round trip. A lease holds at most f x L hits (and at most `LEASE_MAX`) and is spent for at
most f x the window's length; what is left of it then is given up (those hits stay counted
in the shared window, so a lease never lets other instances admit more).

What it costs in exactness, and why it is bounded:
- Over-admission: a leased hit is recorded when the lease is taken, and may be spent up to
  f x window later, so it leaves the shared window up to that much early. Only the one lease
  each instance holds on a key when a window starts can do that: in any window, at most
  f x L hits more than L per instance holding a lease (N instances: N x f x L).
- Under-admission: hits leased and not spent count in the shared window until they leave
  it. Lease sizes follow the traffic (doubled while a lease runs out before it ends, cut to
  what was spent otherwise), so what is given up is small next to what was spent.
- Limits below 2 / f (200 at f = 0.01) are never leased: every hit goes to Redis. Nor is
  the first hit of a key: a client seen once reserves nothing.
- Counts and `reset_after` reported from a lease are those Redis gave when it was taken,
  with the lease's own hits counted as they are spent.

Only limiting leases (hits recorded when admitted); tracking windows (auto-ban counters,
behaviour rules) count every hit in Redis. The structure is thread-safe: one lock around
each step, never held across a round trip.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict

from guard_core._shared.storage.memory_windows import WindowResult

#: Hits one lease holds at most (one script call records them: members of one ZADD).
LEASE_MAX = 1_000
#: Hits asked for by the first lease on a key, taken at its second hit (its first is sent
#: alone); then doubled while leases run out before they end.
LEASE_START = 4

_monotonic = time.monotonic
_new = tuple.__new__


class _Lease:
    """A block of hits recorded in the shared window, spent here."""

    __slots__ = ("count", "ends", "fetching", "left", "limit", "reset_at", "size", "window")

    def __init__(self) -> None:
        self.limit = 0
        self.window = 0.0
        self.size = 0  # hits asked for by the last lease
        self.left = 0  # hits of the current lease not spent yet
        self.count = 0  # hits in the shared window when the lease was taken (its own included)
        self.reset_at = 0.0  # monotonic time the oldest hit then in the window leaves it
        self.ends = 0.0  # monotonic time the lease may no longer be spent
        self.fetching = False  # a lease for this key is being taken (one at a time)


class WindowLeases:
    """The leases one instance holds, per window key (bounded: least recently used go)."""

    def __init__(self, fraction: float, max_keys: int) -> None:
        self.fraction = fraction
        self._max_keys = max_keys
        self._leases: OrderedDict[str, _Lease] = OrderedDict()
        self._lock = threading.Lock()
        #: Leases taken, and hits admitted from them without a round trip (for tests, health).
        self.taken = 0
        self.spent = 0

    def leasable(self, limit: int) -> bool:
        """Whether hits of a limit this large are leased at all."""
        return limit * self.fraction >= 2

    def spend(self, key: str, limit: int, window: float, cost: int) -> WindowResult | None:
        """A hit admitted from this key's live lease, or None (no lease, or not enough left)."""
        lease = self._leases.get(key)
        if lease is None:
            return None
        now = _monotonic()
        with self._lock:
            if (
                lease.left < cost
                or now >= lease.ends
                or lease.limit != limit
                or lease.window != window
            ):
                return None
            lease.left -= cost
            self.spent += 1
            count = lease.count - lease.left
            reset_at = lease.reset_at
        return _new(WindowResult, (True, count, reset_at - now if reset_at > now else 0.0))

    def claim(self, key: str, limit: int, window: float, cost: int) -> int:
        """Hits to lease for this hit (its own cost included), or 0: no lease now (another is
        being taken, or the limit is too small); the caller then sends the hit alone. A
        positive answer must be followed by `granted` or `failed`."""
        cap = min(LEASE_MAX, math.floor(limit * self.fraction))
        if cap < 2 * cost:
            return 0
        leases = self._leases
        with self._lock:
            lease = leases.get(key)
            if lease is None:  # a key's first hit goes alone: a one-off client leases nothing
                leases[key] = _Lease()
                if len(leases) > self._max_keys:
                    leases.popitem(last=False)
                return 0
            if lease.fetching:
                return 0
            else:
                leases.move_to_end(key)
            if lease.size == 0 or lease.limit != limit or lease.window != window:
                size = LEASE_START
            elif lease.left < cost and _monotonic() < lease.ends:
                size = lease.size * 2  # ran out before it ended: the traffic wants more
            else:
                size = lease.size - lease.left  # what was spent of the last one
            lease.fetching = True
            lease.size = size = max(2 * cost, min(cap, size))
            return size

    def granted(
        self, key: str, limit: int, window: float, cost: int, granted: int, result: WindowResult
    ) -> WindowResult:
        """Install the lease Redis granted (`granted` hits recorded, `result` its reply) and
        return this hit's verdict: the first `cost` hits of the lease are its own."""
        now = _monotonic()
        with self._lock:
            lease = self._leases.get(key)
            if lease is None:  # dropped to stay within the bound meanwhile
                lease = self._leases[key] = _Lease()
            lease.fetching = False
            lease.limit, lease.window = limit, window
            if not result.allowed or granted < cost:
                lease.left = 0
                lease.ends = 0.0
                return result
            self.taken += 1
            lease.left = granted - cost
            lease.count = result.count
            lease.reset_at = now + result.reset_after
            lease.ends = now + window * self.fraction
            count = result.count - lease.left
        return _new(WindowResult, (True, count, result.reset_after))

    def failed(self, key: str) -> None:
        """The lease could not be taken (Redis did not answer): the next hit may try again."""
        with self._lock:
            lease = self._leases.get(key)
            if lease is not None:
                lease.fetching = False
                lease.left = 0

    def forget(self, key: str) -> None:
        """Give up this key's lease (its window was reset)."""
        with self._lock:
            self._leases.pop(key, None)
