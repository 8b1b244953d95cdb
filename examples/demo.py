"""guard-core in one screen: an async app and a sync app sharing security state through Redis.

Starts a throwaway redis-server on a free 127.0.0.1 port when the binary exists; otherwise
shows disabled mode, where each app keeps its state in memory.
"""

from __future__ import annotations

import shutil

import anyio

import guard_core
import guard_core_sync
from guard_core import SecurityConfig
from guard_core.testing import LocalRedisServer

ATTACKER = "203.0.113.7"


async def async_app(config: SecurityConfig) -> None:
    async with guard_core.Guard(config) as guard:
        print(f"  async app: health {(await guard.health()).status}")
        await guard.ip_bans.ban_ip(ATTACKER, 3600, reason="brute force")
        print(f"  async app: banned {ATTACKER} for an hour")
        for _ in range(3):
            verdict = await guard.rate_limiter.check(ATTACKER, endpoint="/login", limit=4)
            print(f"  async app: /login hit {verdict.count}/{verdict.limit} admitted")
        await guard.patterns.add_pattern(r"evil-token-\d+")
        print("  async app: added custom pattern evil-token-\\d+")


def sync_app(config: SecurityConfig) -> None:
    with guard_core_sync.Guard(config) as guard:
        print(f"  sync app:  sees the ban: {guard.ip_bans.is_ip_banned(ATTACKER)}")
        for _ in range(2):
            verdict = guard.rate_limiter.check(ATTACKER, endpoint="/login", limit=4)
            state = "admitted" if verdict.allowed else "REJECTED (shared limit reached)"
            print(f"  sync app:  /login hit {verdict.count}/{verdict.limit} {state}")
        matches = guard.patterns.detect("GET /?q=evil-token-42 <script>alert(1)</script>")
        print(f"  sync app:  detects {sorted({m.category for m in matches})}")
        print(f"  sync app:  cleaned up {guard.redis.delete_pattern('*')} keys")


def main() -> None:
    print("guard-core demo")
    if shutil.which("redis-server") is None:
        print("  redis-server not installed: disabled mode, each app keeps its own state")
        config = SecurityConfig(enable_redis=False)
        anyio.run(async_app, config)
        sync_app(config)
        return
    with LocalRedisServer() as server:
        print(f"  throwaway redis-server on 127.0.0.1:{server.port}")
        config = SecurityConfig(redis_url=server.url, redis_prefix="demo:")
        anyio.run(async_app, config)
        sync_app(config)


if __name__ == "__main__":
    main()
