"""`guard-core demo`: two instances, one Redis, an outage, a restart and the recovery, narrated.

Instance A runs on the async face and instance B on the sync face, in one process (A's event
loop runs in a thread through an anyio blocking portal, so that the story can interleave
them). The Redis is a throwaway `redis-server` on a free 127.0.0.1 port; without the binary
the demo runs in memory and says so. Needs nothing beyond the library (no click, no rich).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal

import guard_core
import guard_core_sync
from guard_core.models import RateLimitResult, SecurityConfig
from guard_core.testing import LocalRedisServer, server_available

T = TypeVar("T")

PREFIX = "demo:"
CLIENT = "198.51.100.20"  # logs in too often
BRUTE_FORCER = "203.0.113.7"  # banned by A
SCANNER_NET = "192.0.2.0/24"  # banned by B
SCANNER = "192.0.2.10"
STUFFER = "198.51.100.66"  # banned by A during the outage
LOGIN_LIMIT = 5
HOUR = 3600
RECOVERY_TIMEOUT = 10.0


def _say(text: str = "") -> None:
    print(text, flush=True)


def _step(number: int, title: str) -> None:
    _say()
    _say(f"{number}. {title}")


class _AsyncInstance:
    """Instance A: an async `guard_core.Guard`, driven from this thread through a portal."""

    def __init__(self, portal: BlockingPortal, guard: guard_core.Guard) -> None:
        self._portal = portal
        self.guard = guard

    def run(self, call: Callable[[], Awaitable[T]]) -> T:
        return self._portal.call(call)


def _login(verdict: RateLimitResult) -> str:
    if verdict.allowed:
        return f"admitted, {verdict.count} of {verdict.limit} used"
    return f"REJECTED (429): all {verdict.limit} used; retry in {verdict.reset_after:.0f} s"


def _request(banned: bool) -> str:
    return "REFUSED (403)" if banned else "admitted"


def _config(url: str | None, enable_redis: bool) -> SecurityConfig:
    # short breaker delays and refresh interval, so the story runs in seconds
    return SecurityConfig(
        enable_redis=enable_redis,
        redis_url=url,
        redis_prefix=PREFIX,
        redis_connect_timeout=0.5,
        redis_socket_timeout=0.5,
        redis_breaker_base_delay=0.2,
        redis_breaker_max_delay=0.5,
        redis_state_refresh_interval=0.5,
        redis_journal_flush_interval=0.2,  # heartbeats: each instance soon knows the other
    )


@contextmanager
def _instances(config: SecurityConfig) -> Iterator[tuple[_AsyncInstance, guard_core_sync.Guard]]:
    with ExitStack() as stack:
        portal = stack.enter_context(start_blocking_portal())
        guard_a = stack.enter_context(portal.wrap_async_context_manager(guard_core.Guard(config)))
        guard_b = stack.enter_context(guard_core_sync.Guard(config))
        yield _AsyncInstance(portal, guard_a), guard_b


def run_demo(*, use_redis: bool = True) -> None:
    """Tell the story; with `use_redis=False` (or no redis-server) the in-memory version.

    The library's warnings (Redis lost, back, restarted) are what the story narrates, so
    they stay off the terminal unless logging is configured (`guard-core -v demo`)."""
    with _quiet_library_log():
        _tell(use_redis)


@contextmanager
def _quiet_library_log() -> Iterator[None]:
    logger = logging.getLogger("guard_core")
    if logger.handlers or logging.getLogger().handlers:
        yield
        return
    handler = logging.NullHandler()
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def _tell(use_redis: bool) -> None:
    _say("guard-core demo: two instances of one application share their security state")
    _say("through Redis, and keep protecting when Redis fails.")
    if use_redis and not server_available():
        _say()
        _say("redis-server is not installed, so this run keeps each instance's state in its own")
        _say("memory (as enable_redis=False does). `make demo` installs it for the shared story.")
        use_redis = False
    if not use_redis:
        _memory_story()
        return
    with LocalRedisServer() as server:
        _shared_story(server)
    _say()
    _say("Done: the throwaway redis-server is stopped and its data is gone.")


def _memory_story() -> None:
    config = _config(None, enable_redis=False)
    with _instances(config) as (a, b):
        _step(1, "Start (in memory)")
        _say("   instance A runs on the async face (guard_core.Guard)")
        _say("   instance B runs on the sync face (guard_core_sync.Guard)")
        status_a = a.run(a.guard.health).status
        _say(f'   A reports "{status_a}", B reports "{b.health().status}": Redis is switched off')

        _step(2, f"Rate limits: {LOGIN_LIMIT} logins a minute per client address, counted apart")
        for who in ("A", "B"):
            for _ in range(3):
                if who == "A":
                    verdict = a.run(
                        lambda: a.guard.rate_limiter.check(
                            CLIENT, endpoint="/login", limit=LOGIN_LIMIT
                        )
                    )
                else:
                    verdict = b.rate_limiter.check(CLIENT, endpoint="/login", limit=LOGIN_LIMIT)
                _say(f"   {who}  login from {CLIENT}: {_login(verdict)}")
        _say("   each instance counted only its own logins: without Redis nothing is shared")

        _step(3, "Bans stay where they were made")
        a.run(lambda: a.guard.ip_bans.ban_ip(BRUTE_FORCER, HOUR, reason="brute force"))
        _say(f"   A  bans {BRUTE_FORCER} for 1 h (brute force)")
        banned = a.run(lambda: a.guard.ip_bans.is_ip_banned(BRUTE_FORCER))
        _say(f"   A  request from {BRUTE_FORCER}: {_request(banned)}")
        banned = b.ip_bans.is_ip_banned(BRUTE_FORCER)
        _say(f"   B  request from {BRUTE_FORCER}: {_request(banned)}, B never heard of A's ban")
    _say()
    _say("Done. With redis-server installed the same commands share all of this.")


def _shared_story(server: LocalRedisServer) -> None:
    config = _config(server.url, enable_redis=True)
    with _instances(config) as (a, b):
        _step(1, "Start")
        _say(f"   a throwaway redis-server listens on 127.0.0.1:{server.port} (nothing on disk)")
        _say("   instance A runs on the async face (guard_core.Guard)")
        _say("   instance B runs on the sync face (guard_core_sync.Guard)")
        status_a = a.run(a.guard.health).status
        _say(
            f'   both use the key prefix "{PREFIX}"; A reports "{status_a}", '
            f'B reports "{b.health().status}"'
        )

        _step(2, f"One rate limit for both: {LOGIN_LIMIT} logins a minute per client address")
        for who in ("A", "A", "A", "B", "B", "B"):
            if who == "A":
                verdict = a.run(
                    lambda: a.guard.rate_limiter.check(CLIENT, endpoint="/login", limit=LOGIN_LIMIT)
                )
            else:
                verdict = b.rate_limiter.check(CLIENT, endpoint="/login", limit=LOGIN_LIMIT)
            _say(f"   {who}  login from {CLIENT}: {_login(verdict)}")
        _say("   A and B count in one window: B's third login was the sixth of the minute")

        _step(3, "A ban made on one instance is enforced by the other")
        a.run(lambda: a.guard.ip_bans.ban_ip(BRUTE_FORCER, HOUR, reason="brute force"))
        _say(f"   A  bans {BRUTE_FORCER} for 1 h (brute force)")
        banned = b.ip_bans.is_ip_banned(BRUTE_FORCER)
        _say(f"   B  request from {BRUTE_FORCER}: {_request(banned)}, B read A's ban from Redis")
        b.ip_bans.ban_ip(SCANNER_NET, HOUR, reason="scanner")
        _say(f"   B  bans the network {SCANNER_NET} for 1 h (scanner)")
        banned = a.run(lambda: a.guard.ip_bans.is_ip_banned(SCANNER))
        _say(f"   A  request from {SCANNER}: {_request(banned)}, inside B's banned network")

        _step(4, "Redis goes down")
        # both instances know there are two of them (their heartbeats) before the outage
        _wait_until(
            lambda: (
                a.guard.store.outage.membership.members.count == 2
                and b.store.outage.membership.members.count == 2
            ),
            timeout=10,
        )
        server.stop()
        _say("   redis-server stopped")
        health_a = a.run(a.guard.health)
        health_b = b.health()
        for who, health in (("A", health_a), ("B", health_b)):
            breaker = health.redis.get("breaker", {}).get("state", "?")
            _say(
                f'   {who}  health "{health.status}", circuit breaker {breaker}: '
                "subsystems answer from memory"
            )
        banned = a.run(lambda: a.guard.ip_bans.is_ip_banned(BRUTE_FORCER))
        _say(
            f"   A  request from {BRUTE_FORCER}: {_request(banned)}, A keeps its own bans in memory"
        )
        banned = b.ip_bans.is_ip_banned(SCANNER)
        _say(f"   B  request from {SCANNER}: {_request(banned)}, B keeps its own bans in memory")
        banned = b.ip_bans.is_ip_banned(BRUTE_FORCER)
        if banned:
            _say(f"   B  request from {BRUTE_FORCER}: {_request(banned)}")
        else:
            _say(f"   B  request from {BRUTE_FORCER}: admitted. B read A's ban from Redis and")
            _say("      holds no copy: in an outage each instance enforces the bans it made")
        for _ in range(2):
            verdict = a.run(
                lambda: a.guard.rate_limiter.check(CLIENT, endpoint="/login", limit=LOGIN_LIMIT)
            )
            _say(f"   A  login from {CLIENT}: {_login(verdict)}")
        _say("      A admits only its share of what was left when Redis went away: it last saw")
        _say("      3 of 5 used, and 2 instances alive, so 1 more login (not a fresh 5)")
        attack = "/search?q=<script>alert(1)</script>"
        found = sorted({m.category for m in b.patterns.detect(attack)})
        _say(f"   B  request {attack}: attack detected ({', '.join(found) or 'none'})")
        _say("      the built-in patterns need no Redis")

        _step(5, "A ban during the outage")
        a.run(lambda: a.guard.ip_bans.ban_ip(STUFFER, HOUR, reason="credential stuffing"))
        pending = a.run(a.guard.health).pending_writes.get("ip_bans", 0)
        _say(f"   A  bans {STUFFER} for 1 h (credential stuffing)")
        _say(f"      kept in A's memory, {pending} write waiting for Redis")
        banned = a.run(lambda: a.guard.ip_bans.is_ip_banned(STUFFER))
        _say(f"   A  request from {STUFFER}: {_request(banned)}")

        _step(6, "Redis restarts, empty")
        server.start()
        keys = _raw_key_count(server)
        _say(f"   redis-server started again on 127.0.0.1:{server.port}: it holds {keys} keys")
        started = time.monotonic()
        back = _wait_until(lambda: a.run(a.guard.health).status == "redis") and _wait_until(
            lambda: b.health().status == "redis"
        )
        if not back:
            _say("   Redis did not answer again in time; stopping the demo here")
            sys.exit(1)
        took = time.monotonic() - started
        _say(
            f'   A and B report "redis" again after {took:.1f} s '
            "(the circuit breaker's probe got an answer)"
        )
        banned = a.run(lambda: a.guard.ip_bans.is_ip_banned(STUFFER))
        b.ip_bans.is_ip_banned(STUFFER)
        # the calls woke each guard's background flusher, which writes everything again
        _wait_until(lambda: not a.run(a.guard.health).writing_back)
        _wait_until(lambda: not b.health().writing_back)
        health_a = a.run(a.guard.health)
        restarts = getattr(a.guard.redis, "restarts", 0)
        restarted = "noticed the restart" if restarts else "reconnected"
        _say(
            f"   A  {restarted} and wrote its bans again: "
            f"{health_a.pending_writes.get('ip_bans', 0)} writes waiting"
        )
        banned = b.ip_bans.is_ip_banned(STUFFER)
        _say(
            f"   B  request from {STUFFER}: {_request(banned)}, "
            "the ban made during the outage was replayed"
        )
        banned = b.ip_bans.is_ip_banned(BRUTE_FORCER)
        _say(
            f"   B  request from {BRUTE_FORCER}: {_request(banned)}, "
            "A's earlier ban is back in Redis too"
        )
        banned = a.run(lambda: a.guard.ip_bans.is_ip_banned(SCANNER))
        _say(f"   A  request from {SCANNER}: {_request(banned)}, B wrote its network ban again")
        held = [record.target for record in b.ip_bans.list_bans() if record.shared]
        _say("   Redis holds these bans again:")
        for target in held:
            _say(f"      {target}")
        b.redis.delete_pattern("*")


def _raw_key_count(server: LocalRedisServer) -> int:
    import redis

    client = redis.Redis.from_url(server.url)
    try:
        return int(client.dbsize())
    finally:
        client.close()


def _wait_until(condition: Callable[[], Any], timeout: float = RECOVERY_TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False
