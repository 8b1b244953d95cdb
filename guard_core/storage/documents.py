"""Documents kept as JSON strings in Redis (journal topic `document`): the security-header
configuration (`security_headers:csp_config`), written through the journal with the later
change winning (`lua/document_write.lua`); and cache documents (`cloud_ranges:{provider}`),
stored outright, since they can be fetched again.
"""

from __future__ import annotations

import math

from guard_core._shared.storage.journal import Change
from guard_core._shared.storage.lua_scripts import DOCUMENT_WRITE
from guard_core._shared.storage.outcomes import Unavailable

from .topics import DOCUMENT, Applied, Store, applied, lua_time


class DocumentStorage:
    """The documents of one store."""

    name = DOCUMENT
    label = "configuration documents"
    cached = True

    def __init__(self, store: Store) -> None:
        self._store = store

    def change(self, namespace: str, name: str, document: str, at: float) -> Change:
        """The journal change putting `document` at `{namespace}:{name}`, made at `at`."""
        return Change(
            topic=DOCUMENT, target=f"{namespace}:{name}", action="put", at=at,
            keep_until=math.inf, data={"document": document},
        )  # fmt: skip

    async def get(self, namespace: str, name: str) -> str | Unavailable | None:
        value = await self._store.call(lambda r: r.get_key(namespace, name))
        return value if value is None or isinstance(value, Unavailable) else str(value)

    async def put(
        self, namespace: str, name: str, value: str, ttl: int | None = None
    ) -> bool | Unavailable:
        """Store a cache document outright (no journal: it can be fetched again)."""
        done = await self._store.call(lambda r: r.set_key(namespace, name, value, ttl=ttl))
        return done if isinstance(done, Unavailable) else bool(done)

    async def write(self, change: Change, *, replay: bool) -> Applied:
        namespace, _, name = change.target.partition(":")
        args = [change.data["document"], lua_time(change.at)]
        return applied(await self._store.script(DOCUMENT_WRITE, [(namespace, name)], args))
