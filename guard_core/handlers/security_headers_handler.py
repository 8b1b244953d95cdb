"""`SecurityHeadersManager`: security response headers, configured once and shared via Redis.

The configuration lives in memory and, as one JSON document, at
`{prefix}security_headers:csp_config` so every instance sends the same headers.

- `get_headers()` answers from memory. At most once per
  `config.redis_state_refresh_interval` seconds it re-reads the stored document, so a
  `configure()` on another instance is seen within that interval, and on the next call
  once its invalidation arrives (`guard_core.storage.invalidation`).
- `configure()` re-reads the stored document, applies its changes to it and writes the whole
  configuration back, stamped with `updated_at`. Last write wins: the document in Redis is
  whatever configuration was written last, and every instance adopts it on its next read.
- A document that is not valid (foreign, tampered, injecting headers) is ignored with one
  warning per distinct document; the local configuration stays.
- When Redis is unavailable `configure()` still takes effect locally and `pending_write`
  becomes true. While pending, a stored document replaces the local configuration only when
  its `updated_at` is later (another instance configured afterwards); once Redis answers
  again the pending configuration is written back, and after a Redis restart a non-default
  configuration is written again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from guard_core._shared.concurrency import AsyncLock
from guard_core._shared.logs import get_logger
from guard_core._shared.policy.security_headers import (
    CONFIG_KEY,
    DEFAULT_CONFIG,
    NAMESPACE,
    CompiledHeaders,
    HeadersConfig,
    apply_changes,
)
from guard_core._shared.redaction import escape_control
from guard_core._shared.storage.journal import Change
from guard_core._shared.storage.outcomes import Unavailable, Written
from guard_core._shared.storage.refresh_claim import RefreshClaim
from guard_core.models import SecurityConfig

from ..connection.manager import RedisManager
from ..storage.state_store import StateStore
from ..storage.topics import DOCUMENT

_MAX_REASON = 200


class SecurityHeadersManager:
    """Security response headers shared by every instance on the same Redis.

    `clock` (monotonic seconds) times the refresh interval; tests pass a fake one.
    """

    def __init__(
        self,
        config: SecurityConfig,
        redis_handler: RedisManager | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        store: StateStore | None = None,
    ) -> None:
        self.config = config
        self.redis_handler = redis_handler
        self.logger = get_logger("security_headers")
        self._clock = clock
        self._store = StateStore.for_subsystem(config, redis_handler, store)
        #: Whether the configuration is shared through Redis (configurations are frozen).
        self._shared = self._store.sharing
        # Guards the fields below; held only for short sections with no I/O.
        self._lock = threading.Lock()
        self._current = DEFAULT_CONFIG
        self._compiled = CompiledHeaders.from_config(DEFAULT_CONFIG)
        self._pending = False
        # Bumped by every local change, so a read that raced with it is not applied.
        self._generation = 0
        self._refresh_claim = RefreshClaim(config.redis_state_refresh_interval, clock)
        self._rejected: int | None = None
        # Serialises read-modify-write in configure()/reset() of this instance.
        self._write_lock = AsyncLock()
        self._store.subscribe(DOCUMENT, self._written_back)
        self._store.invalidations.on(DOCUMENT, self._changed_elsewhere)
        self._store.invalidations.follow(DOCUMENT, self._follow)

    @property
    def current(self) -> HeadersConfig:
        """The configuration this instance applies now."""
        with self._lock:
            return self._current

    @property
    def pending_write(self) -> bool:
        """True when the local configuration was changed but could not be written to Redis."""
        with self._lock:
            return self._pending

    async def get_headers(self, path: str | None = None) -> dict[str, str]:
        """A fresh dict of the headers to send for the URL path `path` (no query string).

        With `path_overrides` configured, the longest matching prefix adds or replaces
        headers; `None` gives the headers without overrides.
        """
        if path is not None and not isinstance(path, str):
            raise TypeError(f"path must be a str or None, not {type(path).__name__}")
        if self._shared and self._store.sync_due:
            await self._store.sync()
        if self._refresh_due():
            await self._refresh()
        with self._lock:
            compiled = self._compiled
        return compiled.for_path(path)

    def get_headers_now(self, path: str | None = None) -> dict[str, str] | None:
        """What `get_headers(path)` gives, told without awaiting, or None when it would first
        sync with Redis or re-read the shared configuration (then await `get_headers`)."""
        if path is not None and not isinstance(path, str):
            raise TypeError(f"path must be a str or None, not {type(path).__name__}")
        if self._shared and (self._store.sync_due or self._refresh_claim.due()):
            return None
        with self._lock:
            compiled = self._compiled
        return compiled.for_path(path)

    async def configure(
        self,
        *,
        csp: Mapping[str, Any] | None = None,
        hsts_max_age: int | None = None,
        hsts_include_subdomains: bool | None = None,
        hsts_preload: bool | None = None,
        frame_options: str | None = None,
        content_type_options: bool | None = None,
        referrer_policy: str | None = None,
        permissions_policy: str | None = None,
        custom_headers: Mapping[str, str] | None = None,
        path_overrides: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        """Change the given settings for every instance; `None` leaves a setting as it is.

        - `csp`: directive -> list of sources (`{"img-src": ["'self'", "data:"]}`); replaces
          the whole policy, `{}` sends no Content-Security-Policy.
        - `hsts_max_age` (seconds), `hsts_include_subdomains`, `hsts_preload`:
          Strict-Transport-Security.
        - `frame_options`: "DENY" or "SAMEORIGIN"; `content_type_options`: send `nosniff`.
        - `referrer_policy`: one policy token; `permissions_policy`: the header value.
        - `custom_headers`: name -> value, replacing defaults of the same name; replaces the
          previous custom headers (`{}` clears them).
        - `path_overrides`: path prefix -> {name: value} applied on top for that prefix.

        Bad input raises `TypeError`/`ValueError` before anything changes.
        """
        changes: dict[str, Any] = {
            "csp": csp,
            "hsts_max_age": hsts_max_age,
            "hsts_include_subdomains": hsts_include_subdomains,
            "hsts_preload": hsts_preload,
            "frame_options": frame_options,
            "content_type_options": content_type_options,
            "referrer_policy": referrer_policy,
            "permissions_policy": permissions_policy,
            "custom_headers": custom_headers,
            "path_overrides": path_overrides,
        }
        apply_changes(self.current, updated_at=0.0, **changes)  # validate first
        await self._commit(lambda base: apply_changes(base, updated_at=time.time(), **changes))

    async def reset(self) -> None:
        """Go back to the default headers, for every instance."""
        await self._commit(lambda base: apply_changes(DEFAULT_CONFIG, updated_at=time.time()))

    # -- internals -------------------------------------------------------------------

    async def _commit(self, make: Callable[[HeadersConfig], HeadersConfig]) -> None:
        await self._store.sync()
        async with self._write_lock:
            await self._refresh()  # build on what other instances wrote last
            with self._lock:
                new = make(self._current)
                self._install(new)
            change = self._store.documents.change(
                NAMESPACE, CONFIG_KEY, new.to_json(), new.updated_at
            )
            applied = await self._store.submit(change)
            with self._lock:
                # A read that started before the write landed may hold the old document.
                self._generation += 1
                if self._current is new:
                    self._pending = self._shared and applied.written is Written.KEPT

    def _written_back(self, change: Change, written: Written) -> None:
        """The configuration written back after an outage was taken, or a later one stands
        (adopted on the next read)."""
        if change.target != f"{NAMESPACE}:{CONFIG_KEY}":
            return
        with self._lock:
            if self._current.updated_at == change.at:
                self._pending = False
            if written is Written.SUPERSEDED:
                self._refresh_claim.expire()

    def _changed_elsewhere(self, target: str) -> None:
        """An instance stored a configuration (or changes may have gone unseen): re-read
        it on the next `get_headers()`."""
        if target in ("", f"{NAMESPACE}:{CONFIG_KEY}"):
            self._refresh_claim.expire()

    async def _follow(self, target: str) -> None:
        """The configuration changed elsewhere (or may have): read it now, in the
        background, so that an outage that follows finds it here. The claim stays expired:
        a request meanwhile reads it too, rather than answer from the copy held before."""
        if self._shared and target in ("", f"{NAMESPACE}:{CONFIG_KEY}"):
            await self._refresh()

    def _install(self, new: HeadersConfig) -> None:
        """Make `new` the local configuration (caller holds `_lock`)."""
        self._current = new
        self._compiled = CompiledHeaders.from_config(new)
        self._generation += 1

    def _refresh_due(self) -> bool:
        return self._shared and self._refresh_claim.claim()

    async def _refresh(self) -> None:
        """Adopt the stored configuration when it is valid and newer than what we hold."""
        if not self._shared:
            return
        with self._lock:
            generation = self._generation
        raw = await self._store.documents.get(NAMESPACE, CONFIG_KEY)
        if raw is None or isinstance(raw, Unavailable):
            return  # nothing stored, or Redis unavailable: keep the local configuration
        try:
            stored = HeadersConfig.from_json(raw)
        except ValueError as exc:
            self._reject(raw, exc)
            return
        with self._lock:
            self._rejected = None
            if self._generation != generation or stored == self._current:
                return
            if self._pending and stored.updated_at <= self._current.updated_at:
                return
            self._install(stored)
            self._pending = False

    def _reject(self, raw: str | bytes, exc: ValueError) -> None:
        fingerprint = hash(raw)
        with self._lock:
            if self._rejected == fingerprint:
                return
            self._rejected = fingerprint
        reason = escape_control(str(exc))
        if len(reason) > _MAX_REASON:
            reason = reason[:_MAX_REASON] + "..."
        self.logger.warning(
            "Ignoring the security headers configuration stored in Redis: %s", reason
        )
