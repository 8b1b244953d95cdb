"""The worst `is_ip_banned` call with 1,000,000 unrelated keys in Redis (issue 9, target 5:
no call takes longer than 50 ms, because no request-path call scans the keyspace).

Usage: python benchmarks/bench_keyspace.py [--peer-python .venv-peer/bin/python]
       [--keys 1000000] [--seconds 4]

One redis-server is started on a free 127.0.0.1 port and filled with `--keys` keys that
are not the library's (DEBUG POPULATE; pipelined SETs where DEBUG is refused). Then, for
each implementation (our async face, our sync face, guard-core 4.4.0 from PyPI in its own
virtualenv), two processes share that server: instance A (the changer) keeps banning and
lifting addresses and networks, while instance B (the checker) times every `is_ip_banned`
call, on banned addresses, addresses inside banned networks, addresses A keeps changing
and addresses never banned:
- start: B is started afresh several times; its first calls are timed (start-up itself is
  reported apart: it is no request);
- churn: B checks for `--seconds` while A's changes invalidate what B holds;
- flush: every second B's invalidation subscription is killed (`CLIENT KILL TYPE pubsub`),
  which empties its cache until it subscribes again;
- breaker: every second B's circuit breaker is opened (as a connection failure would) and
  recovers after 50 ms, which empties its cache too.
The server's own command counts (INFO commandstats) during each run show the scans made.
4.4.0 has one instance per process (its managers are singletons), no invalidations and no
breaker: its rows have the start and churn phases only.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import inspect
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TARGET_MS = 50.0
STARTS = 5
FLUSH_EVERY = 1.0  # seconds between a subscription kill and a breaker opening, alternately
BREAKER_DELAY = 0.05
CHANGE_PAUSE = 0.005  # seconds between two changes by instance A
FILLER_PREFIX = "filler"  # DEBUG POPULATE's keys: filler:0 .. filler:N-1

# addresses: banned once for the whole run, inside networks banned once, changed all the
# time by A (addresses, and addresses inside networks A bans and lifts), never banned
BANNED = [f"203.0.113.{i}" for i in range(1, 21)]
NETWORKS = [f"100.{64 + i}.0.0/16" for i in range(20)]
IN_NETWORKS = [f"100.{64 + i}.7.9" for i in range(20)]
CHURNED = [f"192.0.2.{i}" for i in range(1, 41)]
CHURNED_NETWORKS = [f"198.51.{i}.0/24" for i in range(40)]
IN_CHURNED_NETWORKS = [f"198.51.{i}.200" for i in range(40)]
NEVER = [f"233.252.0.{i}" for i in range(1, 21)]
CHECKED = BANNED + IN_NETWORKS + CHURNED + IN_CHURNED_NETWORKS + NEVER


async def resolve(value: Any) -> Any:
    """The sync face answers at once, the async face and 4.4.0 with an awaitable."""
    if inspect.isawaitable(value):
        return await value
    return value


async def pause() -> None:
    """Between two requests a server gives other work its turn (B's subscription task)."""
    await asyncio.sleep(0)


# -- instance A: the changer -------------------------------------------------------------


async def ours_guard(face: str, url: str, prefix: str) -> Any:
    from guard_core.models import SecurityConfig

    if face == "async":
        from guard_core.guard import Guard
    else:
        from guard_core_sync.guard import Guard  # type: ignore[assignment]
    config = SecurityConfig(
        redis_url=url,
        redis_prefix=prefix,
        redis_breaker_base_delay=BREAKER_DELAY,
        redis_breaker_max_delay=BREAKER_DELAY,
    )
    return Guard(config)


async def peer_bans(url: str, prefix: str) -> tuple[Any, Any]:
    """4.4.0's manager and ban manager (singletons: made afresh here)."""
    models: Any = __import__("guard_core.models", fromlist=["SecurityConfig"])
    handler: Any = __import__("guard_core.handlers.redis_handler", fromlist=["RedisManager"])
    ipban: Any = __import__("guard_core.handlers.ipban_handler", fromlist=["IPBanManager"])
    config = models.SecurityConfig(enable_redis=True, redis_url=url, redis_prefix=prefix)
    handler.RedisManager._instance = None
    manager = handler.RedisManager(config)
    await manager.initialize()
    ipban.IPBanManager._instance = None
    bans = ipban.IPBanManager()
    bans.config = config
    return manager, bans


async def changer(impl: str, url: str, prefix: str) -> dict[str, Any]:
    """Bans the fixed targets, says READY, then changes bans until stdin closes."""
    if impl == "peer":
        manager, bans = await peer_bans(url, prefix)
        bans.redis_handler = manager  # initialize_redis without its keyspace SCAN
        guard = None
    else:
        guard = await ours_guard(impl, url, prefix)
        await resolve(guard.start())
        bans = guard.ip_bans
    for target in BANNED + NETWORKS:
        await resolve(bans.ban_ip(target, 3600, "bench"))
    print("READY", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(sys.stdin.fileno(), stop.set)  # stdin closed: readable (EOF)
    changes = i = 0
    while not stop.is_set():
        address = CHURNED[i % len(CHURNED)]
        network = CHURNED_NETWORKS[i % len(CHURNED_NETWORKS)]
        lift = (i // len(CHURNED)) % 2 == 1
        for target in (address, network):
            if lift:
                await resolve(bans.unban_ip(target))
            else:
                await resolve(bans.ban_ip(target, 600, "bench"))
            changes += 1
            await asyncio.sleep(CHANGE_PAUSE)
        i += 1
    loop.remove_reader(sys.stdin.fileno())
    if guard is not None:
        await resolve(guard.close())
    else:
        await manager.close()
    return {"changes": changes}


# -- instance B: the checker -------------------------------------------------------------


class Timings:
    def __init__(self) -> None:
        self.calls: dict[str, list[float]] = {}
        self.starts: list[float] = []
        self.slowest: list[tuple[float, str, str]] = []  # (ms, phase, address)
        self.gaps: dict[str, list[float]] = {}  # ms from a kill or opening until back
        self.gc_pauses: list[float] = []  # ms of each full (generation 2) collection
        self.gc_calls: list[float] = []  # ms of the calls during which one ran
        self._gc_started = 0.0
        gc.callbacks.append(self._gc)

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_pauses.append((time.perf_counter() - self._gc_started) * 1000)

    def timed(self, phase: str, address: str, seconds: float, collected: bool) -> None:
        """One call's time; `collected`: a full garbage collection ran during it."""
        ms = seconds * 1000
        self.calls.setdefault(phase, []).append(ms)
        if collected:
            self.gc_calls.append(ms)
            address += ", full GC during the call"
        if len(self.slowest) < 3 or ms > self.slowest[-1][0]:
            self.slowest = sorted([*self.slowest, (ms, phase, address)], reverse=True)[:3]

    def report(self) -> dict[str, Any]:
        starts = [s * 1000 for s in self.starts]
        return {
            "calls": self.calls,
            "starts_ms": starts,
            "slowest": self.slowest,
            "gaps_ms": self.gaps,
            "gc_ms": self.gc_pauses,
            "gc_calls_ms": self.gc_calls,
        }


async def check(timings: Timings, phase: str, bans: Any, address: str) -> bool:
    collections = len(timings.gc_pauses)
    started = time.perf_counter()
    banned = bool(await resolve(bans.is_ip_banned(address)))
    elapsed = time.perf_counter() - started
    timings.timed(phase, address, elapsed, len(timings.gc_pauses) != collections)
    await pause()
    return banned


def is_back(guard: Any, killed: bool, subscriptions: int) -> bool:
    """Subscribed again after a kill (a new subscription confirmed), or the breaker closed."""
    if killed:
        return bool(guard.store.invalidations.subscriptions > subscriptions)
    return bool(guard.redis.available)


async def ours_checker(face: str, url: str, prefix: str, seconds: float) -> dict[str, Any]:
    import redis

    raw = redis.Redis.from_url(url)
    timings = Timings()
    for n in range(STARTS):  # a fresh instance each time: nothing held, nothing subscribed
        guard = await ours_guard(face, url, prefix)
        started = time.perf_counter()
        await resolve(guard.start())
        timings.starts.append(time.perf_counter() - started)
        await check(timings, "first after start", guard.ip_bans, CHECKED[n * 7 % len(CHECKED)])
        for address in CHECKED:
            await check(timings, "churn", guard.ip_bans, address)
        await resolve(guard.close())
    guard = await ours_guard(face, url, prefix)
    await resolve(guard.start())
    invalidations = guard.store.invalidations
    waited = time.monotonic() + 5
    while not invalidations.subscribed and time.monotonic() < waited:
        await asyncio.sleep(0.005)
    deadline = time.perf_counter() + seconds
    next_event, event, i = time.perf_counter() + FLUSH_EVERY, 0, 0
    kills = openings = 0
    while time.perf_counter() < deadline:
        now = time.perf_counter()
        if now >= next_event:
            next_event = now + FLUSH_EVERY
            subscriptions = invalidations.subscriptions
            killing = event % 2 == 0
            if killing:
                kills += raw.client_kill_filter(_type="pubsub")
                phase = "subscription killed, until back"
            else:
                await resolve(guard.redis._record_failure("bench: the breaker forced open"))
                openings += 1
                phase = "breaker open, until recovered"
            event += 1
            # nothing held meanwhile: each call reads Redis (or memory) until trusted again
            began, j = time.perf_counter(), 0
            while not is_back(guard, killing, subscriptions) and time.perf_counter() < began + 2:
                await check(timings, phase, guard.ip_bans, CHECKED[j % len(CHECKED)])
                j += 1
            gap = (time.perf_counter() - began) * 1000
            timings.gaps.setdefault(phase.partition(",")[0], []).append(gap)
            for address in CHECKED:  # the first sweep after: every verdict read again
                await check(timings, "first sweep after", guard.ip_bans, address)
            continue
        await check(timings, "churn", guard.ip_bans, CHECKED[i % len(CHECKED)])
        i += 1
    await resolve(guard.close())
    raw.close()
    result = timings.report()
    result.update(kills=kills, breaker_openings=openings)
    return result


async def peer_checker(url: str, prefix: str, seconds: float) -> dict[str, Any]:
    timings = Timings()
    manager = None
    for n in range(STARTS):
        if manager is not None:
            await manager.close()
        started = time.perf_counter()
        manager, bans = await peer_bans(url, prefix)
        if n == 0:  # its legacy-key migration SCANs the whole keyspace: once is enough
            await bans.initialize_redis(manager)
        else:
            bans.redis_handler = manager
        timings.starts.append(time.perf_counter() - started)
        await check(timings, "first after start", bans, CHECKED[n * 7 % len(CHECKED)])
        for address in CHECKED:
            await check(timings, "churn", bans, address)
    deadline, i = time.perf_counter() + seconds, 0
    while time.perf_counter() < deadline:
        await check(timings, "churn", bans, CHECKED[i % len(CHECKED)])
        i += 1
    if manager is not None:
        await manager.close()
    return timings.report()


# -- the run -----------------------------------------------------------------------------


def populate(url: str, count: int) -> str:
    """Fill the server with `count` keys that are not the library's; how it was done."""
    import redis

    raw: Any = redis.Redis.from_url(url)  # execute_command is untyped
    started = time.perf_counter()
    try:
        raw.execute_command("DEBUG", "POPULATE", count, FILLER_PREFIX, 16)
        how = "DEBUG POPULATE"
    except redis.ResponseError:
        pipe = raw.pipeline(transaction=False)
        for n in range(count):
            pipe.set(f"{FILLER_PREFIX}:{n}", "x" * 16)
            if n % 10_000 == 9_999:
                pipe.execute()
        pipe.execute()
        how = "pipelined SETs"
    size = raw.dbsize()
    raw.close()
    return f"{size:,} keys by {how} in {time.perf_counter() - started:.1f} s"


def command_counts(url: str) -> dict[str, int]:
    import redis

    raw = redis.Redis.from_url(url, decode_responses=True)
    stats: dict[str, dict[str, int]] = raw.info("commandstats")
    raw.close()
    return {name.removeprefix("cmdstat_"): int(s["calls"]) for name, s in stats.items()}


def run_impl(impl: str, python: str, url: str, seconds: float) -> dict[str, Any]:
    prefix = f"kbench_{impl}:"
    base = [os.path.abspath(python), str(HERE / "bench_keyspace.py"), "--url", url]
    base += ["--impl", impl, "--prefix", prefix, "--seconds", str(seconds)]
    a = subprocess.Popen(
        [*base, "--role", "changer"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd="/",  # the peer imports its own guard_core, not this checkout's
    )
    assert a.stdin is not None and a.stdout is not None
    try:
        if a.stdout.readline().strip() != "READY":
            raise RuntimeError(f"{impl}: instance A did not start")
        before = command_counts(url)
        b = subprocess.run(
            [*base, "--role", "checker"], stdout=subprocess.PIPE, text=True, cwd="/", check=True
        )
        after = command_counts(url)
    finally:
        a.stdin.close()
    changes = json.loads(a.stdout.read().strip().rsplit("\n", 1)[-1].removeprefix("RESULT "))
    a.wait()
    result: dict[str, Any] = json.loads(b.stdout.strip().rsplit("\n", 1)[-1])
    result["changes"] = changes["changes"]
    result["commands"] = {
        name: after.get(name, 0) - before.get(name, 0)
        for name in ("scan", "keys", "hscan", "hget", "get", "hgetall")
    }
    return result


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def show(impl: str, r: dict[str, Any], notes: list[str]) -> None:
    calls: dict[str, list[float]] = r["calls"]
    every = [v for values in calls.values() for v in values]
    worst = max(every)
    if impl == "peer":
        verdict = "(4.4.0: reference)"
    else:
        verdict = f"{'✓' if worst <= TARGET_MS else '✗'} (target ≤ {TARGET_MS:g} ms)"
    cmds = r["commands"]
    print(
        f"| {impl} | {len(every)} | {percentile(every, 0.5):.3f} | {percentile(every, 0.99):.3f} "
        f"| {worst:.2f} {verdict} | {max(r['starts_ms']):.1f} | {r['changes']} "
        f"| {cmds['scan']} / {cmds['keys']} / {cmds['hscan']} |",
        flush=True,
    )
    for phase, values in calls.items():
        print(
            f"|   ↳ {phase} | {len(values)} | {percentile(values, 0.5):.3f} "
            f"| {percentile(values, 0.99):.3f} | {max(values):.2f} | | | |"
        )
    slowest = ", ".join(f"{ms:.2f} ms ({phase}, {address})" for ms, phase, address in r["slowest"])
    notes.append(f"{impl}: slowest calls {slowest}")
    gcs, hit = r["gc_ms"], r["gc_calls_ms"]
    if gcs:
        note = f"{impl}: {len(gcs)} full GC pauses (the longest {max(gcs):.1f} ms)"
        if hit:
            rest = sorted(every)
            for ms in hit:
                rest.remove(ms)
            note += f", {len(hit)} during a call; without those calls, max {max(rest):.2f} ms"
        notes.append(note)
    for what, gaps in r["gaps_ms"].items():
        notes.append(f"{impl}: {what}: back after {', '.join(f'{g:.0f}' for g in gaps)} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--peer-python", default=str(HERE.parent / ".venv-peer/bin/python"))
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--only", nargs="*", choices=["async", "sync", "peer"])
    parser.add_argument("--role", choices=["changer", "checker"])
    parser.add_argument("--impl", choices=["async", "sync", "peer"])
    parser.add_argument("--url")
    parser.add_argument("--prefix")
    args = parser.parse_args()
    if args.role is not None:  # one instance, in a process of its own
        logging.basicConfig(level=logging.ERROR)
        if args.role == "changer":
            print("RESULT " + json.dumps(asyncio.run(changer(args.impl, args.url, args.prefix))))
        elif args.impl == "peer":
            print(json.dumps(asyncio.run(peer_checker(args.url, args.prefix, args.seconds))))
        else:
            found = asyncio.run(ours_checker(args.impl, args.url, args.prefix, args.seconds))
            print(json.dumps(found))
        return

    from guard_core.testing import LocalRedisServer

    impls = [("async", sys.executable), ("sync", sys.executable)]
    if args.only is not None:
        impls = [(impl, python) for impl, python in impls if impl in args.only]
    if args.only is not None and "peer" not in args.only:
        pass
    elif Path(args.peer_python).exists():
        impls.append(("peer", args.peer_python))
    else:
        print(f"(peer left out: {args.peer_python} does not exist; `make bench` creates it)")
    try:  # DEBUG POPULATE needs this on Redis 7; older servers know no such directive
        server = LocalRedisServer(extra_args=("--enable-debug-command", "local")).start()
    except RuntimeError:
        server = LocalRedisServer().start()
    with server:
        print(f"is_ip_banned with {populate(server.url, args.keys)} (not the library's)")
        print(
            "| implementation | calls | p50 ms | p99 ms | max ms | start ms (max) "
            "| changes by A | SCAN / KEYS / HSCAN |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        notes: list[str] = []
        for impl, python in impls:
            show(impl, run_impl(impl, python, server.url, args.seconds), notes)
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
