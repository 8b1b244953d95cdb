"""`guard-core watch`: a live table of the shared state and of its changes, for a bounded time.

Every interval it reads the bans, the busiest rate-limit windows and the key counts from
Redis, and lists what changed since the last read (a ban made or lifted, Redis lost or back).
It keeps watching through an outage: that is when an operator looks.
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

import click
from rich.console import Group
from rich.live import Live

from guard_core._shared.keys import RATE_LIMIT
from guard_core.cli.render import console, span, table
from guard_core.cli.state import (
    CommandError,
    describe_failure,
    guard_keys,
    namespace_counts,
    read,
    split_key,
    where,
)
from guard_core_sync import Guard

BUSIEST = 5
EVENTS_SHOWN = 10


@dataclass
class Snapshot:
    at: float
    reachable: bool
    error: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    #: ban target -> seconds left
    bans: dict[str, float | None] = field(default_factory=dict)
    #: (rate-limit window key, hits recorded), busiest first
    busiest: list[tuple[str, int]] = field(default_factory=list)


def take_snapshot(guard: Guard) -> Snapshot:
    """The state now, or an unreachable snapshot saying why (never raises for Redis)."""
    now = time.time()
    if not guard.redis.ping():
        return Snapshot(now, reachable=False, error=describe_failure(guard))
    try:
        counts = namespace_counts(guard)
        # read from the ban indexes, as every instance does (no keyspace scan)
        bans: dict[str, float | None] = {
            record.target: max(0.0, round(record.expires_at - now, 1))
            for record in guard.ip_bans.list_bans()
            if record.shared
        }
        windows = guard_keys(guard, f"{RATE_LIMIT}:*")
        sizes = read(guard, lambda conn: _zcards(conn, windows)) if windows else []
    except CommandError as exc:
        return Snapshot(now, reachable=False, error=str(exc))
    busiest = sorted(
        ((split_key(guard, key)[1], int(size)) for key, size in zip(windows, sizes, strict=True)),
        key=lambda item: (-item[1], item[0]),
    )[:BUSIEST]
    return Snapshot(now, reachable=True, counts=counts, bans=bans, busiest=busiest)


def _zcards(conn: Any, keys: list[str]) -> list[Any]:
    with conn.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.zcard(key)
        result: list[Any] = pipe.execute()
        return result


def changes(before: Snapshot | None, after: Snapshot, interval: float) -> list[str]:
    """What changed between two snapshots, in words."""
    if before is None:
        if not after.reachable:
            return [f"Redis unreachable: {after.error}"]
        return [f"watching: {len(after.bans)} bans, {sum(after.counts.values())} keys"]
    if before.reachable and not after.reachable:
        return [f"Redis LOST: {after.error}"]
    if not after.reachable:
        return []
    if not before.reachable:
        return [f"Redis BACK: {len(after.bans)} bans, {sum(after.counts.values())} keys"]
    found = [
        f"ban added: {target} ({span(after.bans[target])})"
        for target in sorted(after.bans.keys() - before.bans.keys())
    ]
    for target in sorted(before.bans.keys() - after.bans.keys()):
        left = before.bans[target]
        expired = left is not None and left <= interval * 2
        found.append(f"ban {'expired' if expired else 'lifted'}: {target}")
    return found


def _render(
    guard: Guard,
    current: Snapshot,
    before: Snapshot | None,
    events: deque[tuple[float, str]],
) -> Group:
    moment = time.strftime("%H:%M:%S", time.localtime(current.at))
    if current.reachable:
        headline = f"{moment}  Redis at {where(guard)} answers; {sum(current.counts.values())} keys"
    else:
        headline = f"{moment}  Redis at {where(guard)} UNREACHABLE: {current.error}"
    bans = table(
        f"bans ({len(current.bans)})",
        ("target", "expires in"),
        [(t, span(left)) for t, left in sorted(current.bans.items())[:EVENTS_SHOWN]],
    )
    earlier = dict(before.busiest) if before is not None else {}
    busiest = table(
        "busiest rate-limit windows",
        ("window", "hits recorded", "since last refresh"),
        [(key, hits, _delta(hits, earlier.get(key))) for key, hits in current.busiest],
    )
    log = table(
        "changes",
        ("time", "what"),
        [(time.strftime("%H:%M:%S", time.localtime(at)), text) for at, text in events],
    )
    return Group(headline, "", bans, "", busiest, "", log)


def _delta(hits: int, earlier: int | None) -> str:
    if earlier is None:
        return "new"
    return f"{hits - earlier:+d}"


def run_watch(guard: Guard, *, interval: float, duration: float, as_json: bool) -> None:
    """Refresh every `interval` seconds until `duration` has passed (at least once)."""
    deadline = time.monotonic() + duration
    events: deque[tuple[float, str]] = deque(maxlen=EVENTS_SHOWN)
    previous: Snapshot | None = None
    shown: Snapshot | None = None

    def step() -> Snapshot:
        nonlocal previous, shown
        shown = previous
        current = take_snapshot(guard)
        new = changes(previous, current, interval)
        events.extend((current.at, text) for text in new)
        if as_json:
            line = asdict(current) | {"changes": new}
            click.echo(json.dumps(line, sort_keys=True, default=str))
        previous = current
        return current

    if as_json:
        step()
        while time.monotonic() + interval <= deadline:
            time.sleep(interval)
            step()
        return
    out = console()
    with Live(_render(guard, step(), shown, events), console=out, auto_refresh=False) as live:
        while time.monotonic() + interval <= deadline:
            time.sleep(interval)
            current = step()
            live.update(_render(guard, current, shown, events), refresh=True)
