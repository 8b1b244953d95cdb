"""`SusPatternsManager`: built-in attack patterns plus custom ones shared through Redis.

Policy only: which patterns apply and how content is scanned. The custom patterns are kept
in Redis by `guard_core.storage` (a sorted JSON array at `patterns:custom`, changed one
pattern at a time by a Lua script, later change wins). Each instance caches the list
(compiled) and re-reads it at most every `redis_state_refresh_interval` seconds, so
`detect()` reaches Redis at most once per interval, and at once after a change pushed by
another instance (`guard_core.storage.invalidation`).
"""

from __future__ import annotations

from guard_core._shared.keys import CUSTOM_PATTERNS as CUSTOM_KEY
from guard_core._shared.keys import PATTERNS
from guard_core._shared.logs import get_logger
from guard_core._shared.policy.attack_patterns import (
    BUILTIN_PATTERNS,
    CustomPatternCache,
    PatternList,
    PatternMatch,
    compile_custom,
    decode_pattern_list,
    scan,
    validate_pattern_text,
)
from guard_core._shared.redaction import escape_control
from guard_core._shared.storage.journal import Change
from guard_core._shared.storage.outcomes import Unavailable, Written
from guard_core._shared.storage.refresh_claim import RefreshClaim
from guard_core.models import SecurityConfig

from ..connection.manager import RedisManager
from ..storage.state_store import StateStore
from ..storage.topics import PATTERN

__all__ = ["CUSTOM_KEY", "PATTERNS", "SusPatternsManager"]


class SusPatternsManager:
    """Detects attack patterns in request content: built-in ones and custom ones.

    Custom patterns are shared by every instance on the same Redis; an instance sees
    another's change within `redis_state_refresh_interval` seconds. When Redis is disabled,
    unreachable or failing, changes are kept here (see `added_here` and `pending_changes`)
    and detection goes on with what is known; they reach Redis once it answers.
    Patterns are case-insensitive (a custom one may opt out with `(?-i:...)`).
    """

    def __init__(
        self,
        config: SecurityConfig,
        redis_handler: RedisManager | None = None,
        *,
        store: StateStore | None = None,
    ) -> None:
        self.config = config
        self.logger = get_logger("patterns")
        self._store = StateStore.for_subsystem(config, redis_handler, store)
        self._cache = CustomPatternCache()
        self._malformed_reported = False
        self._refresh = RefreshClaim(config.redis_state_refresh_interval)
        self._store.subscribe(PATTERN, self._written_back)
        self._store.invalidations.on(PATTERN, lambda _target: self._refresh.expire())
        self._store.invalidations.follow(PATTERN, self._follow)

    async def add_pattern(self, pattern: str) -> None:
        """Add a custom pattern; ValueError if it is empty or not a valid regex."""
        regex = compile_custom(pattern)
        applied = await self._store.submit(self._store.patterns.change(pattern, True))
        self._cache.add(pattern, regex, shared=applied.written is not Written.KEPT)

    async def remove_pattern(self, pattern: str) -> bool:
        """Remove a custom pattern; whether it was there."""
        validate_pattern_text(pattern)
        applied = await self._store.submit(self._store.patterns.change(pattern, False))
        was_active = self._cache.remove(pattern, shared=applied.written is not Written.KEPT)
        return was_active or applied.changed

    async def get_patterns(self) -> PatternList:
        """Pattern strings in effect, built-in and custom apart (custom re-read from Redis)."""
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
        store = self._store
        if store.sharing:
            if store.sync_due:  # told without awaiting: the request path's usual case
                await store.sync()
            if self._refresh.claim():
                await self._read_shared()
        return scan(content, self._cache.active(), self.config.pattern_max_content_length)

    def detect_now(self, content: str) -> tuple[PatternMatch, ...] | None:
        """What `detect(content)` gives, told without awaiting, or None when it would first
        sync with Redis or re-read the shared patterns (then await `detect`)."""
        if not isinstance(content, str):
            raise TypeError(f"content must be a str, not {type(content).__name__}")
        store = self._store
        if store.sharing and (store.sync_due or self._refresh.due()):
            return None
        return scan(content, self._cache.active(), self.config.pattern_max_content_length)

    async def refresh(self) -> bool:
        """Re-read the custom patterns from Redis now; whether Redis answered."""
        if not self._store.sharing:
            return False
        await self._store.sync()
        self._refresh.claim(force=True)
        return await self._read_shared()

    @property
    def added_here(self) -> frozenset[str]:
        """Custom patterns added through this instance (and not removed through it since)."""
        return self._cache.added_here

    @property
    def pending_writes(self) -> int:
        """Changes made here that Redis has not taken yet (0 when Redis is not in use)."""
        return self._store.pending_writes().get(PATTERN, 0)

    @property
    def pending_changes(self) -> dict[str, bool]:
        """Changes Redis has not taken yet: pattern -> True (added) or False (removed)."""
        return dict(self._cache.pending)

    # -- internals -------------------------------------------------------------------

    async def _follow(self, _target: str) -> None:
        """Patterns changed elsewhere (or may have): read them now, in the background, so
        that an outage that follows finds them here. The claim stays expired: a request
        meanwhile reads them too, rather than answer from the copy held before."""
        await self._read_shared()

    def _written_back(self, change: Change, written: Written) -> None:
        """A change written back after an outage: Redis took it, or a later one stands."""
        added = (change.action == "add") == (written is Written.TAKEN)
        if added:
            self._cache.add(change.target, compile_custom(change.target), shared=True)
        else:
            self._cache.remove(change.target, shared=True)

    async def _read_shared(self) -> bool:
        read = self._cache.begin_read()
        settled = self._store.settled
        found = await self._store.patterns.read()
        if isinstance(found, Unavailable):
            return False
        patterns = decode_pattern_list(found)
        if patterns is None:
            if not self._malformed_reported:
                self._malformed_reported = True
                self.logger.warning(
                    "Ignoring %s:%s in Redis: not a JSON array of strings", PATTERNS, CUSTOM_KEY
                )
            return False
        self._malformed_reported = False
        # after a restart Redis lacks patterns because it lost them, not because they were
        # removed elsewhere: keep them until the write-back has put them back
        settled = settled and self._store.settled
        if settled:
            for pattern in self._cache.added_here - set(patterns):
                if not self._store.is_pending(PATTERN, pattern):
                    self._store.forget(PATTERN, pattern)  # removed elsewhere
        skipped = self._cache.load_shared(patterns, read, forget_lifted=settled)
        for pattern in skipped or ():
            self.logger.warning(
                "Ignoring shared custom pattern %s: not a valid regex", escape_control(pattern)
            )
        return True
