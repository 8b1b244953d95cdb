"""`SusPatternsManager`: built-in attack patterns plus custom ones shared through Redis.

Redis layout: `patterns:custom` holds the custom patterns as a sorted JSON array of strings.
Changes go through `lua/json_set_update.lua`, which adds or removes one entry atomically,
so concurrent changes from several instances are all kept. Each instance caches the list
(compiled) and re-reads it at most every `redis_state_refresh_interval` seconds, so
`detect()` reaches Redis at most once per interval.
"""

from __future__ import annotations

import logging

from guard_core.attack_patterns import (
    BUILTIN_PATTERNS,
    CustomPatternCache,
    PatternList,
    PatternMatch,
    compile_custom,
    decode_pattern_list,
    scan,
    validate_pattern_text,
)
from guard_core.lua_scripts import JSON_SET_UPDATE
from guard_core.models import SecurityConfig
from guard_core.refresh import RefreshClaim
from guard_core.write_back import Replay, WriteBackSchedule

from .redis_handler import RedisManager, call_or_none

PATTERNS = "patterns"
CUSTOM_KEY = "custom"


async def _read_custom(redis: RedisManager) -> tuple[object]:
    # wrapped, so that an absent key (None) is told apart from a failed call (None)
    return (await redis.get_key(PATTERNS, CUSTOM_KEY),)


class SusPatternsManager:
    """Detects attack patterns in request content: built-in ones and custom ones.

    Custom patterns are shared by every instance on the same Redis; an instance sees
    another's change within `redis_state_refresh_interval` seconds. When Redis is disabled,
    unreachable or failing, changes are kept here (see `added_here` and `pending_changes`)
    and detection goes on with what is known; Redis is used again once it answers.
    Patterns are case-insensitive (a custom one may opt out with `(?-i:...)`).
    """

    def __init__(self, config: SecurityConfig, redis_handler: RedisManager | None = None) -> None:
        self.config = config
        self.logger = logging.getLogger("guard_core.patterns")
        self._redis = redis_handler
        self._cache = CustomPatternCache()
        self._malformed_reported = False
        self._write_back_schedule = WriteBackSchedule(config.redis_state_refresh_interval)
        self._refresh = RefreshClaim(config.redis_state_refresh_interval)

    async def add_pattern(self, pattern: str) -> None:
        """Add a custom pattern; ValueError if it is empty or not a valid regex."""
        regex = compile_custom(pattern)
        await self._write_back()
        changed = await self._update_shared("add", pattern)
        self._cache.add(pattern, regex, shared=changed is not None)

    async def remove_pattern(self, pattern: str) -> bool:
        """Remove a custom pattern; whether it was there."""
        validate_pattern_text(pattern)
        await self._write_back()
        changed = await self._update_shared("remove", pattern)
        was_active = self._cache.remove(pattern, shared=changed is not None)
        return was_active or bool(changed)

    async def get_patterns(self) -> PatternList:
        """Pattern strings in effect, built-in and custom apart (custom re-read from Redis)."""
        await self._write_back()
        await self.refresh()
        return PatternList(
            builtin=tuple(p.pattern for p in BUILTIN_PATTERNS),
            custom=self._cache.patterns(),
        )

    async def detect(self, content: str) -> tuple[PatternMatch, ...]:
        """The patterns matching the first `scan_length(pattern_max_content_length)`
        characters of `content` (at least 1 MiB; built-in first, then custom), each with
        its category.
        """
        if not isinstance(content, str):
            raise TypeError(f"content must be a str, not {type(content).__name__}")
        await self._write_back()
        if self._uses_redis() and self._refresh.claim():
            await self._read_shared()
        return scan(content, self._cache.active(), self.config.pattern_max_content_length)

    async def refresh(self) -> bool:
        """Re-read the custom patterns from Redis now; whether Redis answered."""
        if not self._uses_redis():
            return False
        self._refresh.claim(force=True)
        return await self._read_shared()

    @property
    def added_here(self) -> frozenset[str]:
        """Custom patterns added through this instance (and not removed through it since)."""
        return self._cache.added_here

    @property
    def pending_writes(self) -> int:
        """Changes made here that Redis has not taken yet (0 when Redis is not in use)."""
        return len(self._cache.pending) if self._uses_redis() else 0

    @property
    def pending_changes(self) -> dict[str, bool]:
        """Changes Redis has not taken yet: pattern -> True (added) or False (removed)."""
        return dict(self._cache.pending)

    # -- internals -------------------------------------------------------------------

    def _uses_redis(self) -> bool:
        return self._redis is not None and self._redis.config.enable_redis

    async def _write_back(self) -> None:
        """Replay to Redis the changes it did not take, and after a restart every pattern
        added here."""
        redis = self._redis
        if redis is None or not self._uses_redis():
            return
        replay = self._write_back_schedule.due(
            redis.recoveries, redis.restarts, pending=self._cache.has_pending
        )
        if replay is None:
            return
        changes = dict(self._cache.pending)
        if replay is Replay.EVERYTHING:
            for pattern in self._cache.added_here:
                changes.setdefault(pattern, True)
        for pattern, added in changes.items():
            await self._replay(pattern, added)

    async def _replay(self, pattern: str, added: bool) -> None:
        taken = await self._update_shared("add" if added else "remove", pattern) is not None
        if added:
            # refused: pending again, so that the next write-back retries it
            self._cache.add(pattern, compile_custom(pattern), shared=taken)
        elif taken:
            self._cache.remove(pattern, shared=True)

    async def _update_shared(self, operation: str, pattern: str) -> int | None:
        """1/0 (changed or not) from Redis, or None when Redis did not take the change."""
        if not self._uses_redis():
            return None
        result = await call_or_none(
            self._redis,
            lambda r: r.run_script(
                JSON_SET_UPDATE, keys=[(PATTERNS, CUSTOM_KEY)], args=[operation, pattern]
            ),
        )
        return None if result is None else int(result)

    async def _read_shared(self) -> bool:
        generation = self._cache.generation
        redis = self._redis
        restarts = redis.restarts if redis is not None else 0
        found = await call_or_none(self._redis, _read_custom)
        if found is None:
            return False
        patterns = decode_pattern_list(found[0])
        if patterns is None:
            if not self._malformed_reported:
                self._malformed_reported = True
                self.logger.warning(
                    "Ignoring %s:%s in Redis: not a JSON array of strings", PATTERNS, CUSTOM_KEY
                )
            return False
        self._malformed_reported = False
        # after a restart Redis lacks patterns because it lost them, not because they were
        # removed elsewhere: keep them until the replay has written them again
        settled = (
            redis is not None
            and redis.restarts == restarts
            and self._write_back_schedule.seen_restarts == restarts
        )
        skipped = self._cache.load_shared(patterns, generation, forget_lifted=settled)
        for pattern in skipped or ():
            self.logger.warning("Ignoring shared custom pattern %r: not a valid regex", pattern)
        return True
