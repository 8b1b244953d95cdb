"""`Guard`: the one entry point adapters need, every subsystem over one Redis connection pool."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

import httpx

from guard_core._shared.logs import get_logger
from guard_core._shared.redaction import redact_url
from guard_core.exceptions import GuardRedisError
from guard_core.models import GuardHealth, SecurityConfig

from .connection.manager import RedisManager
from .handlers.allow_handler import AllowListManager
from .handlers.behavior_handler import BehaviorTracker
from .handlers.cloud_handler import CloudManager
from .handlers.ipban_handler import IPBanManager
from .handlers.ratelimit_handler import RateLimitManager
from .handlers.security_headers_handler import SecurityHeadersManager
from .handlers.suspatterns_handler import SusPatternsManager
from .storage.state_store import StateStore
from .storage.topics import ALLOW, BAN, DOCUMENT, PATTERN, WINDOW

SUBSYSTEMS = (
    "rate_limiter", "ip_bans", "allow_list", "cloud", "patterns", "headers", "behavior",
)  # fmt: skip


class Guard:
    """Builds the Redis manager and every subsystem from one `SecurityConfig`.

    Use it as a context manager (`async with Guard(config) as guard:`). When Redis cannot be
    reached at start-up the guard starts in degraded mode (subsystems answer from memory)
    with one warning, and reconnects by itself on later use.
    """

    def __init__(
        self,
        config: SecurityConfig,
        *,
        client_factory: Callable[[SecurityConfig], Any] | None = None,
        http_client: httpx.AsyncClient | None = None,
        serving: bool = True,
    ) -> None:
        self.config = config
        #: False for a tool that changes state but serves no requests (the CLI): it neither
        #: mirrors the shared state nor counts among the instances sharing rate limits.
        self.serving = serving
        self.logger = get_logger("guard")
        self.redis = RedisManager(config, client_factory=client_factory)
        #: Storage shared by every subsystem: typed operations and the outage journal.
        store = self.store = StateStore(config, self.redis)
        self.rate_limiter = RateLimitManager(config, self.redis, store=store)
        self.ip_bans = IPBanManager(config, self.redis, store=store)
        self.allow_list = AllowListManager(config, self.redis, store=store)
        self.cloud = CloudManager(config, self.redis, http_client=http_client, store=store)
        self.patterns = SusPatternsManager(config, self.redis, store=store)
        self.headers = SecurityHeadersManager(config, self.redis, store=store)
        self.behavior = BehaviorTracker(config, self.redis, store=store)

    async def start(self) -> None:
        """Connect to Redis when enabled; never raises for an unreachable Redis.

        In the async face under trio, with Redis enabled, it raises
        `UnsupportedBackendError` (redis.asyncio needs asyncio); `enable_redis=False` works
        under trio. A guard may be started again after `close()` (an application's lifespan
        running twice, a test client per test): it connects anew.
        """
        self.redis.reopen()
        if not self.config.enable_redis:
            self.logger.info("Redis disabled: subsystems keep their state in memory")
            return
        try:
            await self.redis.initialize()
        except GuardRedisError:
            # The manager has logged the WARNING for this state change.
            self.logger.info(
                "Starting in degraded mode: %s is unreachable; reconnecting on later use",
                redact_url(self.config.redis_url),
            )
        await self.store.start(serving=self.serving)

    async def close(self) -> None:
        """Write what Redis has not taken yet (within `redis_close_flush_timeout`), then close
        the Redis connection (later Redis operations fail fast)."""
        await self.store.close()
        await self.redis.close()

    async def health(self) -> GuardHealth:
        """The Redis mode ("redis", "degraded" or "disabled"), each subsystem's mode, the
        writes held for Redis, the evictions of the bounded memory fallbacks and the live
        instances sharing rate limits."""
        answered = await self.redis.ping()
        status = "disabled" if answered is None else "redis" if answered else "degraded"
        mode = "shared" if status == "redis" else "memory"
        pending = self.store.pending_writes()
        return GuardHealth(
            status=status,
            subsystems=dict.fromkeys(SUBSYSTEMS, mode),
            redis={
                "url": redact_url(self.config.redis_url),
                "prefix": self.config.redis_prefix,
                "breaker": self.redis.breaker_snapshot(),
            },
            pending_writes={
                "ip_bans": pending.get(BAN, 0),
                "patterns": pending.get(PATTERN, 0),
                "headers": pending.get(DOCUMENT, 0),
                "rate_limits": pending.get(WINDOW, 0),
                "allow_list": pending.get(ALLOW, 0),
            },
            evictions={
                "ip_bans": self.ip_bans.memory_evictions,
                "rate_limits": self.rate_limiter.memory_evictions,
                "behavior": self.behavior.memory_evictions,
                "journal": self.store.journal.evictions,
            },
            live_instances=self.store.outage.membership.members.count,
            mirror={**self.store.mirror.report(), "allow_list": self.allow_list.entries},
            writing_back=self.store.writing_back,
        )

    async def __aenter__(self) -> Guard:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
