"""Operations per second of one implementation, as a JSON line on stdout.

Run by bench_speed.py, with our interpreter (`--impl ours`: both faces, raw redis-py and
`limits` on the same server) or the peer's (`--impl peer`: guard-core 4.4.0, async only).
`--no-hiredis` hides hiredis before redis-py is imported (redis-py then parses in Python);
without `--url` only the in-memory rows run.

Each figure counts calls made back to back for `--budget` seconds, in three rounds of which
the best is kept (the machine may be shared); "x50" counts the calls of 50 tasks of one
event loop sharing one client, manager or guard.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

TASKS = 50
ROUNDS = 3
TURNS = 3
BANNED = "203.0.113.50"
UNBANNED = "203.0.113.51"
IDENTIFIERS = [f"198.51.100.{i % 250}" for i in range(1000)]
BIG_LIMIT = 1_000_000
WINDOW = 60
CLEAN_BODY = json.dumps(
    {"user": "alice", "items": [{"id": i, "note": "lorem ipsum"} for i in range(40)]}
)

Row = dict[str, float | None]


def sync_rate(call: Callable[[int], object], budget: float) -> float:
    for i in range(200):  # warm-up
        call(i)
    best = 0.0
    for _ in range(ROUNDS):  # the best round: the machine is shared
        done, started = 0, time.perf_counter()
        deadline = started + budget / ROUNDS
        while time.perf_counter() < deadline:
            for i in range(done, done + 100):
                call(i)
            done += 100
        best = max(best, done / (time.perf_counter() - started))
    return best


async def async_rate(call: Callable[[int], Awaitable[object]], budget: float) -> float:
    for i in range(200):
        await call(i)
    best = 0.0
    for _ in range(ROUNDS):
        done, started = 0, time.perf_counter()
        deadline = started + budget / ROUNDS
        while time.perf_counter() < deadline:
            for i in range(done, done + 100):
                await call(i)
            done += 100
        best = max(best, done / (time.perf_counter() - started))
    return best


async def concurrent_rate(call: Callable[[int], Awaitable[object]], budget: float) -> float:
    await asyncio.gather(*(call(i) for i in range(TASKS)))  # warm-up: fills the pool
    best = 0.0
    for _ in range(ROUNDS):
        counts = [0] * TASKS
        deadline = time.perf_counter() + budget / ROUNDS

        async def worker(task: int, counts: list[int] = counts, deadline: float = deadline) -> None:
            i = task
            while time.perf_counter() < deadline:
                await call(i)
                i += TASKS
                counts[task] += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(task) for task in range(TASKS)))
        best = max(best, sum(counts) / (time.perf_counter() - started))
    return best


def interleaved(calls: list[Callable[[int], object]], budget: float) -> list[float]:
    """`sync_rate` of each call, measured in turns (the best turn of each kept), so that a
    burst of other work on a shared machine weighs on every side of a ratio alike."""
    best = [0.0] * len(calls)
    for _ in range(TURNS):
        for index, call in enumerate(calls):
            best[index] = max(best[index], sync_rate(call, budget / TURNS))
    return best


async def async_interleaved(
    calls: list[Callable[[int], Awaitable[object]]], budget: float, *, concurrent: bool
) -> list[float]:
    rate = concurrent_rate if concurrent else async_rate
    best = [0.0] * len(calls)
    for _ in range(TURNS):
        for index, call in enumerate(calls):
            best[index] = max(best[index], await rate(call, budget / TURNS))
    return best


# -- ours ---------------------------------------------------------------------------------


def ours(url: str | None, budget: float) -> dict[str, Row]:
    import redis
    import redis.asyncio

    import guard_core
    import guard_core_sync
    from guard_core._shared.concurrency import sleep
    from guard_core._shared.storage.lua_scripts import SLIDING_WINDOW
    from guard_core.models import SecurityConfig

    rows: dict[str, Row] = {}
    memory = SecurityConfig(enable_redis=False)

    # in memory: rate-limit check and detect
    sync_guard = guard_core_sync.Guard(memory)
    sync_guard.start()

    async def memory_async() -> tuple[float, float, float, float]:
        guard = guard_core.Guard(memory)
        await guard.start()

        async def check(i: int) -> object:
            return await guard.rate_limiter.check(IDENTIFIERS[i % 1000], limit=BIG_LIMIT)

        async def detect(i: int) -> object:
            return await guard.patterns.detect(CLEAN_BODY)

        found = (
            await async_rate(check, budget),
            await concurrent_rate(check, budget),
            await async_rate(detect, budget),
            await concurrent_rate(detect, budget),
        )
        await guard.close()
        return found

    a_check, c_check, a_detect, c_detect = asyncio.run(memory_async())
    s_check = sync_rate(
        lambda i: sync_guard.rate_limiter.check(IDENTIFIERS[i % 1000], limit=BIG_LIMIT), budget
    )
    s_detect = sync_rate(lambda i: sync_guard.patterns.detect(CLEAN_BODY), budget)
    sync_guard.close()
    rows["rate-limit check, memory"] = {"sync": s_check, "async": a_check, "async_x50": c_check}
    rows["detect (1.5 KB JSON)"] = {"sync": s_detect, "async": a_detect, "async_x50": c_detect}
    try:
        from limits import parse, storage, strategies

        item = parse(f"{BIG_LIMIT}/minute")
        limiter = strategies.MovingWindowRateLimiter(storage.MemoryStorage())
        rows["rate-limit check, memory"]["limits"] = sync_rate(
            lambda i: limiter.hit(item, IDENTIFIERS[i % 1000]), budget
        )
    except ImportError:
        pass
    if url is None:
        return rows

    config = SecurityConfig(redis_url=url)
    raw = redis.Redis.from_url(url, decode_responses=True)
    raw.flushall()
    key = "guard_core:bench:k"
    raw.set(key, "v")
    window_key = "guard_core:rate_limit:raw"

    def raw_window(i: int) -> object:
        keys = [f"{window_key}:{IDENTIFIERS[i % 1000]}"]  # the keys ours uses
        args: list[str | int] = [BIG_LIMIT, WINDOW * 1000, uuid.uuid4().hex, "0"]
        return raw.evalsha(SLIDING_WINDOW.sha, 1, *keys, *args)

    raw.script_load(SLIDING_WINDOW.source)

    # the sync face
    guard = guard_core_sync.Guard(config)
    guard.start()
    guard.ip_bans.ban_ip(BANNED, 3600)
    while not guard.store.invalidations.subscribed:
        sleep(0.01)
    limits_hit: Callable[[int], object] | None = None
    try:
        from limits import parse, storage, strategies

        item = parse(f"{BIG_LIMIT}/minute")
        limiter = strategies.MovingWindowRateLimiter(storage.RedisStorage(url))
        limits_hit = lambda i: limiter.hit(item, IDENTIFIERS[i % 1000])  # noqa: E731
    except ImportError:
        pass
    ours_get, raw_get = interleaved(
        [lambda i: guard.redis.get_key("bench", "k"), lambda i: raw.get(key)], budget
    )
    rate_calls: list[Callable[[int], object]] = [
        lambda i: guard.rate_limiter.check(IDENTIFIERS[i % 1000], limit=BIG_LIMIT, window=WINDOW),
        raw_window,
    ]
    if limits_hit is not None:
        rate_calls.append(limits_hit)
    rate_figures = interleaved(rate_calls, budget)
    ours_rate, raw_script = rate_figures[0], rate_figures[1]
    limits_redis = rate_figures[2] if limits_hit is not None else None
    sync_rows = {
        "get_key": ours_get,
        "is_ip_banned, banned": sync_rate(lambda i: guard.ip_bans.is_ip_banned(BANNED), budget),
        "is_ip_banned, not banned": sync_rate(
            lambda i: guard.ip_bans.is_ip_banned(UNBANNED), budget
        ),
        "rate-limit check, Redis": ours_rate,
    }
    guard.close()

    async def async_rows() -> dict[str, tuple[float, float, float, float]]:
        guard = guard_core.Guard(config)
        await guard.start()
        await guard.ip_bans.ban_ip(BANNED, 3600)
        while not guard.store.invalidations.subscribed:
            await asyncio.sleep(0.01)
        client = redis.asyncio.Redis.from_url(url, decode_responses=True)

        async def get(i: int) -> object:
            return await guard.redis.get_key("bench", "k")

        async def banned(i: int) -> object:
            return await guard.ip_bans.is_ip_banned(BANNED)

        async def unbanned(i: int) -> object:
            return await guard.ip_bans.is_ip_banned(UNBANNED)

        async def check(i: int) -> object:
            return await guard.rate_limiter.check(
                IDENTIFIERS[i % 1000], limit=BIG_LIMIT, window=WINDOW
            )

        async def raw_get(i: int) -> object:
            return await client.get(key)

        async def raw_script(i: int) -> object:
            keys = [f"{window_key}:{IDENTIFIERS[i % 1000]}"]  # the keys ours uses
            args: list[str | int] = [BIG_LIMIT, WINDOW * 1000, uuid.uuid4().hex, "0"]
            return await client.evalsha(SLIDING_WINDOW.sha, 1, *keys, *args)

        found = {}
        for name, ours_call, raw_call in (
            ("get_key", get, raw_get),
            ("is_ip_banned, banned", banned, raw_get),
            ("is_ip_banned, not banned", unbanned, raw_get),
            ("rate-limit check, Redis", check, raw_script),
        ):
            ours_seq, raw_seq = await async_interleaved(
                [ours_call, raw_call], budget, concurrent=False
            )
            ours_many, raw_many = await async_interleaved(
                [ours_call, raw_call], budget, concurrent=True
            )
            found[name] = (ours_seq, ours_many, raw_seq, raw_many)
        await guard.close()
        await client.aclose()
        return found

    for name, (a, c, raw_a, raw_c) in asyncio.run(async_rows()).items():
        rows[name] = {"sync": sync_rows[name], "async": a, "async_x50": c}
        rows[name]["raw_sync"] = raw_script if name.startswith("rate") else raw_get
        rows[name]["raw_async"] = raw_a
        rows[name]["raw_async_x50"] = raw_c
    if limits_redis is not None:
        rows["rate-limit check, Redis"]["limits"] = limits_redis
    raw.close()
    return rows


# -- propagation: a change on one instance seen by another ----------------------------------

KINDS = ["address ban", "network ban", "custom pattern", "header configuration"]


def _subjects(i: int) -> tuple[str, str, str, str]:
    """Round `i`'s address, network, address in that network, and pattern."""
    return f"203.0.113.{100 + i}", f"198.18.{i}.0/24", f"198.18.{i}.9", f"propagation-{i}-x"


def sync_change(guard: Any, kind: str, i: int) -> None:
    address, network, _, marker = _subjects(i)
    if kind == "address ban":
        guard.ip_bans.ban_ip(address, 600)
    elif kind == "network ban":
        guard.ip_bans.ban_ip(network, 600)
    elif kind == "custom pattern":
        guard.patterns.add_pattern(marker)
    else:
        guard.headers.configure(custom_headers={"X-Probe": str(i)})


def sync_seen(guard: Any, kind: str, i: int) -> bool:
    address, _, in_network, marker = _subjects(i)
    if kind == "address ban":
        return bool(guard.ip_bans.is_ip_banned(address))
    if kind == "network ban":
        return bool(guard.ip_bans.is_ip_banned(in_network))
    if kind == "custom pattern":
        return bool(guard.patterns.detect(marker))
    return bool(guard.headers.get_headers().get("X-Probe") == str(i))


async def async_change(guard: Any, kind: str, i: int) -> None:
    address, network, _, marker = _subjects(i)
    if kind == "address ban":
        await guard.ip_bans.ban_ip(address, 600)
    elif kind == "network ban":
        await guard.ip_bans.ban_ip(network, 600)
    elif kind == "custom pattern":
        await guard.patterns.add_pattern(marker)
    else:
        await guard.headers.configure(custom_headers={"X-Probe": str(i)})


async def async_seen(guard: Any, kind: str, i: int) -> bool:
    address, _, in_network, marker = _subjects(i)
    if kind == "address ban":
        return bool(await guard.ip_bans.is_ip_banned(address))
    if kind == "network ban":
        return bool(await guard.ip_bans.is_ip_banned(in_network))
    if kind == "custom pattern":
        return bool(await guard.patterns.detect(marker))
    return bool((await guard.headers.get_headers()).get("X-Probe") == str(i))


def propagation(url: str, rounds: int) -> dict[str, dict[str, list[float]]]:
    """Milliseconds from the start of a change on one guard until another guard's next call
    shows it (that guard's view primed just before), per kind of change, both faces."""
    import redis

    import guard_core
    import guard_core_sync
    from guard_core.models import SecurityConfig

    config = SecurityConfig(redis_url=url)

    def sync_face() -> dict[str, list[float]]:
        first, second = guard_core_sync.Guard(config), guard_core_sync.Guard(config)
        first.start()
        second.start()
        while not (first.store.invalidations.subscribed and second.store.invalidations.subscribed):
            time.sleep(0.01)
        found: dict[str, list[float]] = {kind: [] for kind in KINDS}
        for i in range(rounds):
            for kind in KINDS:
                if sync_seen(first, kind, i):  # primes the old state
                    raise RuntimeError(f"{kind} {i} seen before it was made")
                started = time.perf_counter()
                sync_change(second, kind, i)
                while not sync_seen(first, kind, i):
                    time.sleep(0.0005)
                found[kind].append((time.perf_counter() - started) * 1000)
        first.close()
        second.close()
        return found

    async def async_face() -> dict[str, list[float]]:
        first, second = guard_core.Guard(config), guard_core.Guard(config)
        await first.start()
        await second.start()
        while not (first.store.invalidations.subscribed and second.store.invalidations.subscribed):
            await asyncio.sleep(0.01)
        found: dict[str, list[float]] = {kind: [] for kind in KINDS}
        for i in range(rounds):
            for kind in KINDS:
                if await async_seen(first, kind, i):
                    raise RuntimeError(f"{kind} {i} seen before it was made")
                started = time.perf_counter()
                await async_change(second, kind, i)
                while not await async_seen(first, kind, i):
                    await asyncio.sleep(0.0005)
                found[kind].append((time.perf_counter() - started) * 1000)
        await first.close()
        await second.close()
        return found

    client = redis.Redis.from_url(url)
    client.flushall()
    sync_found = sync_face()
    client.flushall()
    async_found = asyncio.run(async_face())
    client.close()
    return {"sync": sync_found, "async": async_found}


# -- the peer (guard-core 4.4.0) -----------------------------------------------------------


def peer(url: str | None, budget: float) -> dict[str, Row]:
    # its modules have our import names: typed as Any, not as ours
    models: Any = importlib.import_module("guard_core.models")
    rows: dict[str, Row] = {}

    async def run() -> None:
        ratelimit: Any = importlib.import_module("guard_core.handlers.ratelimit_handler")
        patterns: Any = importlib.import_module("guard_core.handlers.suspatterns_handler")

        async def reply(status: int, text: str) -> object:
            return None

        memory = models.SecurityConfig(enable_redis=False, enable_rate_limiting=True)
        ratelimit.RateLimitManager._instance = None
        limiter = ratelimit.RateLimitManager(memory)

        async def check(i: int) -> object:
            ip = IDENTIFIERS[i % 1000]
            return await limiter.check_rate_limit(None, ip, reply, rate_limit=BIG_LIMIT)

        rows["rate-limit check, memory"] = {"peer": await async_rate(check, budget)}
        patterns.SusPatternsManager._instance = None
        detector = patterns.SusPatternsManager(memory)
        rows["detect (1.5 KB JSON)"] = {
            "peer": await async_rate(lambda i: detector.detect(CLEAN_BODY, BANNED), budget / 4)
        }
        if url is None:
            return
        handler: Any = importlib.import_module("guard_core.handlers.redis_handler")
        ipban: Any = importlib.import_module("guard_core.handlers.ipban_handler")
        config = models.SecurityConfig(enable_redis=True, redis_url=url, enable_rate_limiting=True)
        handler.RedisManager._instance = None
        manager = handler.RedisManager(config)
        await manager.initialize()
        await manager.set_key("bench", "k", "v")
        rows["get_key"] = {
            "peer": await async_rate(lambda i: manager.get_key("bench", "k"), budget)
        }
        ipban.IPBanManager._instance = None
        bans = ipban.IPBanManager()
        bans.config = config
        await bans.initialize_redis(manager)
        await bans.ban_ip(BANNED, 3600)
        rows["is_ip_banned, banned"] = {
            "peer": await async_rate(lambda i: bans.is_ip_banned(BANNED), budget)
        }
        rows["is_ip_banned, not banned"] = {
            "peer": await async_rate(lambda i: bans.is_ip_banned(UNBANNED), budget)
        }
        ratelimit.RateLimitManager._instance = None
        shared = ratelimit.RateLimitManager(config)
        await shared.initialize_redis(manager)

        async def shared_check(i: int) -> object:
            ip = IDENTIFIERS[i % 1000]
            return await shared.check_rate_limit(
                None, ip, reply, rate_limit=BIG_LIMIT, rate_limit_window=WINDOW
            )

        rows["rate-limit check, Redis"] = {"peer": await async_rate(shared_check, budget)}
        await manager.close()

    asyncio.run(run())
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--impl", choices=["ours", "peer"], required=True)
    parser.add_argument("--url", default=None, help="a local redis-server (none: memory rows)")
    parser.add_argument("--budget", type=float, default=0.5, help="seconds per figure")
    parser.add_argument("--no-hiredis", action="store_true")
    parser.add_argument("--propagation", type=int, default=0, help="rounds of changes to time")
    args = parser.parse_args()
    if args.no_hiredis:
        sys.modules["hiredis"] = None  # type: ignore[assignment]  # redis-py then parses in Python
    import redis.utils

    measure = ours if args.impl == "ours" else peer
    rows = measure(args.url, args.budget)
    result: dict[str, Any] = {"hiredis": bool(redis.utils.HIREDIS_AVAILABLE), "rows": rows}
    if args.propagation and args.url is not None:
        result["propagation"] = propagation(args.url, args.propagation)
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
