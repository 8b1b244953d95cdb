"""What a rate-limit check costs Redis itself: microseconds per script call, from Redis's own
`INFO commandstats`, for our sliding-window script and for `limits`' moving window.

    python benchmarks/script_cost.py [--calls N]

Starts its own redis-server on a free 127.0.0.1 port; needs the `bench` extra (`limits`).
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Callable

import redis

from guard_core._shared.storage.lua_scripts import SLIDING_WINDOW
from guard_core.testing import LocalRedisServer

IDENTIFIERS = [f"198.51.100.{i % 250}" for i in range(1000)]
BIG_LIMIT = 1_000_000
WINDOW = 60


def usec_per_call(client: redis.Redis, call: Callable[[int], object], calls: int) -> float:
    for i in range(calls // 4):  # warm-up: windows of the same size as measured
        call(i)
    client.config_resetstat()
    for i in range(calls):
        call(i)
    stats = client.info("commandstats")["cmdstat_evalsha"]
    return float(stats["usec_per_call"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    from limits import parse, storage, strategies

    with LocalRedisServer() as server:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        sha = client.script_load(SLIDING_WINDOW.source)
        ids = itertools.count()

        def ours(i: int) -> object:
            key = f"guard_core:rate_limit:rate:{IDENTIFIERS[i % 1000]}"
            return client.evalsha(sha, 1, key, BIG_LIMIT, WINDOW * 1000, f"h{next(ids)}", "0")

        item = parse(f"{BIG_LIMIT}/minute")
        limiter = strategies.MovingWindowRateLimiter(storage.RedisStorage(server.url))

        def theirs(i: int) -> object:
            return limiter.hit(item, IDENTIFIERS[i % 1000])

        print(f"{args.calls} calls each, one local redis-server (INFO commandstats)")
        print("| script | us per call in Redis |")
        print("| --- | --- |")
        print(f"| ours (sliding_window.lua) | {usec_per_call(client, ours, args.calls):.2f} |")
        print(f"| limits (moving window) | {usec_per_call(client, theirs, args.calls):.2f} |")
        client.close()


if __name__ == "__main__":
    main()
