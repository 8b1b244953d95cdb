"""guard-core in one screen: an async app and a sync app sharing state through one Redis.

Starts a throwaway redis-server on a free 127.0.0.1 port when the binary exists; otherwise
shows disabled mode, where every manager call returns None so callers keep local state.
"""

from __future__ import annotations

import shutil

import anyio

import guard_core
import guard_core_sync
from guard_core import SecurityConfig
from guard_core.testing import LocalRedisServer


async def async_app(config: SecurityConfig) -> None:
    manager = guard_core.RedisManager(config)
    await manager.initialize()
    await manager.set_key("banned_ips", "203.0.113.7", "brute force", ttl=3600)
    hits = await manager.incr("rate_limit", "rate:203.0.113.7", ttl=60)
    print(f"  async app: banned 203.0.113.7 for 1 h, rate counter now {hits}")
    await manager.close()


def sync_app(config: SecurityConfig) -> None:
    manager = guard_core_sync.RedisManager(config)
    manager.initialize()
    reason = manager.get_key("banned_ips", "203.0.113.7")
    hits = manager.incr("rate_limit", "rate:203.0.113.7", ttl=60)
    print(f"  sync app:  sees the ban ({reason!r}), rate counter now {hits}")
    print(f"  keys under the prefix: {sorted(manager.keys('*') or [])}")
    print(f"  cleaned up {manager.delete_pattern('*')} keys")
    manager.close()


def disabled_demo() -> None:
    config = SecurityConfig(enable_redis=False)
    manager = guard_core_sync.RedisManager(config)
    print("  redis-server not installed: disabled mode")
    print(f"  set_key -> {manager.set_key('banned_ips', '203.0.113.7', '1')!r}")
    print(f"  get_key -> {manager.get_key('banned_ips', '203.0.113.7')!r} (callers use memory)")


def main() -> None:
    print("guard-core demo")
    if shutil.which("redis-server") is None:
        disabled_demo()
        return
    with LocalRedisServer() as server:
        print(f"  throwaway redis-server on 127.0.0.1:{server.port}")
        config = SecurityConfig(redis_url=server.url, redis_prefix="demo:")
        anyio.run(async_app, config)
        sync_app(config)


if __name__ == "__main__":
    main()
