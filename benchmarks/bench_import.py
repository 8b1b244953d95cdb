"""Bulk bans: `guard-core bans import` of 100,000 addresses into one local redis-server.

Usage: python benchmarks/bench_import.py [--bans N] [--rounds N]

Two figures, bans per second, each the median of `--rounds` runs on a flushed server:
- store: `guard.store.bans.ban_many` on the sync face (what the command calls): batches of
  1000, one Lua call (`lua/ban_many.lua`) and one invalidation message each;
- command: `guard-core bans import FILE` as a process of its own (`python -m
  guard_core.cli`), timed from its start to its exit: Python's start-up and imports (about
  0.4 s), reading and checking the file and the writes;
- command, import only: the same run as the command times itself (`--json`'s `seconds`:
  reading and checking the file, connecting, writing), without the start-up.
Target (issue 22): at least 50,000 bans/s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import guard_core_sync
from guard_core import SecurityConfig
from guard_core.testing import LocalRedisServer

TARGET = 50_000
ROOT = Path(__file__).resolve().parents[1]
PREFIX = "bench_import:"


def addresses(count: int) -> list[str]:
    return [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(count)]


def store_rate(server: LocalRedisServer, listed: list[str]) -> float:
    config = SecurityConfig(redis_url=server.url, redis_prefix=PREFIX)
    with guard_core_sync.Guard(config, serving=False) as guard:
        guard.redis.delete_pattern("*")
        bans = [(address, 3600, "bench") for address in listed]
        start = time.perf_counter()
        done = guard.store.bans.ban_many(bans, by="bench")
        elapsed = time.perf_counter() - start
        assert done.taken == len(listed), done
        guard.redis.delete_pattern("*")
    return len(listed) / elapsed


def command_rates(server: LocalRedisServer, path: Path, count: int) -> tuple[float, float]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GUARD_CORE_")}
    env = environ | {
        "PYTHONPATH": str(ROOT),
        "GUARD_CORE_REDIS_URL": server.url,
        "GUARD_CORE_REDIS_PREFIX": PREFIX,
    }
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "guard_core.cli", "bans", "import", "--json", str(path)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"bans import failed: {result.stderr.strip()}")
    data = json.loads(result.stdout)
    assert data["imported"] == count, data
    config = SecurityConfig(redis_url=server.url, redis_prefix=PREFIX)
    with guard_core_sync.Guard(config, serving=False) as guard:
        guard.redis.delete_pattern("*")
    return count / elapsed, count / float(data["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bans", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    listed = addresses(args.bans)
    with tempfile.TemporaryDirectory() as tmp, LocalRedisServer() as server:
        path = Path(tmp) / "bans.txt"
        path.write_text("\n".join(listed) + "\n", encoding="utf-8")
        stores = [store_rate(server, listed) for _ in range(args.rounds)]
        runs = [command_rates(server, path, args.bans) for _ in range(args.rounds)]
    print(f"bulk bans, {args.bans:,} addresses, one local redis-server, median of {args.rounds}")
    figures = (
        ("store (ban_many)", stores),
        ("command (bans import)", [whole for whole, _ in runs]),
        ("command, import only", [itself for _, itself in runs]),
    )
    for name, rates in figures:
        median = statistics.median(rates)
        verdict = "✓" if median >= TARGET else "✗"
        shown = ", ".join(f"{rate / 1000:.1f}k" for rate in rates)
        print(f"  {name:<22} {median:>9,.0f} bans/s  ({shown})  target {TARGET:,} {verdict}")


if __name__ == "__main__":
    main()
