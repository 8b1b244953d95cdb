"""Custom attack patterns shared through Redis (journal topic `pattern`).

Layout (`{prefix}` omitted): `patterns:custom`, the sorted JSON array of custom patterns;
`pattern_changes:custom`, a hash pattern -> when it was last added or removed, by which
`lua/pattern_write.lua` lets the later change win whichever instance writes it first.
"""

from __future__ import annotations

import math
import time

from guard_core._shared.keys import CUSTOM_PATTERNS as CUSTOM_KEY
from guard_core._shared.keys import PATTERN_CHANGES, PATTERNS
from guard_core._shared.storage.journal import Change
from guard_core._shared.storage.lua_scripts import PATTERN_WRITE
from guard_core._shared.storage.outcomes import Unavailable

from .documents import DocumentStorage
from .topics import PATTERN, Applied, Store, applied, lua_time


class PatternStorage:
    """The custom patterns of one store."""

    name = PATTERN
    label = "custom pattern changes"
    cached = True

    def __init__(self, store: Store, documents: DocumentStorage) -> None:
        self._store = store
        self._documents = documents

    def change(self, pattern: str, added: bool) -> Change:
        """The journal change adding (or removing) `pattern`."""
        now = time.time()
        return Change(
            topic=PATTERN, target=pattern, action="add" if added else "remove", at=now,
            keep_until=math.inf if added else now + self._store.config.redis_lift_memory,
        )  # fmt: skip

    async def read(self) -> str | Unavailable | None:
        """The stored JSON array of custom patterns (None: absent)."""
        return await self._documents.get(PATTERNS, CUSTOM_KEY)

    async def write(self, change: Change, *, replay: bool) -> Applied:
        keys = [(PATTERNS, CUSTOM_KEY), (PATTERN_CHANGES, CUSTOM_KEY)]
        args = [change.action, change.target, lua_time(change.at)]
        return applied(await self._store.script(PATTERN_WRITE, keys, args))
