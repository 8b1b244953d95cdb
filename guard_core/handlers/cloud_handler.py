"""`CloudManager`: is an address in a cloud provider's published ranges (AWS, GCP, Azure)?

Redis layout: `cloud_ranges:{provider}` (for example `guard_core:cloud_ranges:AWS`) holds
JSON `{"fetched_at": <Unix time>, "cidrs": [...]}` with a TTL of `cloud_ip_refresh_interval`,
so the instances on one Redis fetch each provider's file once per interval between them.
Without Redis (disabled, unreachable, or no manager) each instance fetches for itself and
keeps the ranges in memory only.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import httpx

from guard_core._shared.addresses import IPAddress, parse_ip
from guard_core._shared.concurrency import AsyncLock
from guard_core._shared.keys import CLOUD_RANGES
from guard_core._shared.logs import get_logger
from guard_core._shared.policy.ip_ranges import (
    DEFAULT_URLS,
    PARSERS,
    IPRangeTable,
    check_provider,
    decode_cached,
    encode_cached,
    find_azure_json_url,
)
from guard_core._shared.redaction import Redactor, escape_control, redact_url
from guard_core._shared.storage.outcomes import Unavailable
from guard_core.models import SecurityConfig

from ..connection.manager import RedisManager
from ..storage.state_store import StateStore

NAMESPACE = CLOUD_RANGES
#: Bound on each download when the manager makes its own HTTP client, in seconds.
FETCH_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
#: Bounds of one download (the published files are a few MB).
MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
DOWNLOAD_DEADLINE = 60.0
#: Seconds before a provider is tried again after a failed fetch (at most the refresh interval),
#: so that lookups do not go to the network on every call while a provider is down.
RETRY_AFTER_FAILURE = 60.0

RefreshOutcome = Literal["fresh", "redis", "fetched", "failed"]


def _now() -> float:
    # Wall clock, not monotonic: freshness is compared with `fetched_at` written to Redis by
    # other instances.
    return time.time()


@dataclass(frozen=True)
class _Ranges:
    table: IPRangeTable
    cidrs: tuple[str, ...]
    fetched_at: float


class CloudManager:
    """Looks addresses up in the published IP ranges of cloud providers, in O(log n).

    Parsed ranges live in memory. A lookup (`is_cloud_ip`, `provider_of`) does no I/O while
    they are fresher than `cloud_ip_refresh_interval`; when a provider's ranges are stale or
    missing, the lookup refreshes them itself (from Redis when another instance has fetched
    them, otherwise from the provider, then stores them in Redis), so a manager works
    without any scheduler. Concurrent lookups meanwhile answer from the stale ranges; only
    lookups with no ranges at all wait for the first load. After a failed fetch the last
    good ranges are kept, one warning is logged, and lookups leave the provider alone for
    `RETRY_AFTER_FAILURE` seconds. Call `refresh()` at start-up to load the ranges before
    the first request, or on a schedule to keep lookups from ever refreshing.

    `http_client` (an `httpx.AsyncClient`) is used for every download when given, and not
    closed; otherwise a client with a bounded timeout is made for each refresh.
    """

    def __init__(
        self,
        config: SecurityConfig,
        redis_handler: RedisManager | None = None,
        *,
        http_client: httpx.AsyncClient | None = None,
        store: StateStore | None = None,
    ) -> None:
        self.config = config
        self.logger = get_logger("cloud")
        self._store = StateStore.for_subsystem(config, redis_handler, store)
        self._http_client = http_client
        self._providers = tuple(check_provider(name) for name in config.cloud_providers)
        for name, url in config.cloud_ip_urls.items():
            _check_url(check_provider(name), url)
        self._urls = {**DEFAULT_URLS, **config.cloud_ip_urls}
        self._interval = float(config.cloud_ip_refresh_interval)
        self._retry_delay = min(RETRY_AFTER_FAILURE, self._interval)
        self._ranges: dict[str, _Ranges] = {}
        self._retry_at: dict[str, float] = {}
        self._refreshing: dict[str, int] = dict.fromkeys(PARSERS, 0)
        self._failing: set[str] = set()
        self._state_lock = threading.Lock()
        self._refresh_locks = {name: AsyncLock() for name in PARSERS}

    @property
    def providers(self) -> tuple[str, ...]:
        """The providers looked at by default (`config.cloud_providers`)."""
        return self._providers

    # -- public API ---------------------------------------------------------------------

    async def refresh(
        self, providers: Iterable[str] | None = None, *, force: bool = False
    ) -> dict[str, RefreshOutcome]:
        """Bring each provider's ranges up to date; returns where each came from.

        Fresh ranges in memory are kept ("fresh"); stale ones are replaced from Redis when
        another instance stored fresher ones ("redis"), otherwise fetched from the provider
        and stored in Redis ("fetched"). With `force`, every provider is fetched. A failed
        fetch keeps the previous ranges ("failed"). Never raises for I/O failures.
        """
        names = self._check_providers(providers)
        outcomes: dict[str, RefreshOutcome] = {}
        for name in names:
            with self._state_lock:
                self._refreshing[name] += 1
            try:
                outcomes[name] = await self._update(name, force=force, lazy=False)
            finally:
                with self._state_lock:
                    self._refreshing[name] -= 1
        return outcomes

    async def is_cloud_ip(
        self, ip: str | IPAddress, providers: Iterable[str] | None = None
    ) -> bool:
        """Whether `ip` is in the ranges of one of `providers` (default: the configured ones).

        Raises `ValueError` for an invalid address or an unknown provider name.
        """
        address = parse_ip(ip)
        return await self._find(address, self._check_providers(providers)) is not None

    async def provider_of(self, ip: str | IPAddress) -> str | None:
        """The first configured provider (in `cloud_providers` order) whose ranges hold `ip`."""
        return await self._find(parse_ip(ip), self._providers)

    def ranges(self, provider: str) -> tuple[str, ...]:
        """The CIDRs of `provider` held in memory now (empty before the first load); no I/O."""
        current = self._ranges.get(check_provider(provider))
        return current.cidrs if current is not None else ()

    # -- internals ----------------------------------------------------------------------

    def _check_providers(self, providers: Iterable[str] | None) -> tuple[str, ...]:
        if providers is None:
            return self._providers
        if isinstance(providers, str):
            raise TypeError("providers must be a collection of provider names, not a str")
        return tuple(check_provider(name) for name in providers)

    def _is_fresh(self, ranges: _Ranges | None, now: float) -> bool:
        return ranges is not None and now < ranges.fetched_at + self._interval

    async def _find(self, address: IPAddress, providers: tuple[str, ...]) -> str | None:
        for name in providers:
            ranges = await self._current(name)
            if ranges is not None and ranges.table.contains(address):
                return name
        return None

    async def _current(self, name: str) -> _Ranges | None:
        ranges = self._ranges.get(name)
        now = _now()
        if self._is_fresh(ranges, now):
            return ranges
        with self._state_lock:
            if now < self._retry_at.get(name, -math.inf):
                return ranges
            if ranges is not None and self._refreshing[name]:
                return ranges  # another caller is refreshing: answer from the stale ranges
            self._refreshing[name] += 1
        try:
            await self._update(name, force=False, lazy=True)
        finally:
            with self._state_lock:
                self._refreshing[name] -= 1
        return self._ranges.get(name)

    async def _update(self, name: str, *, force: bool, lazy: bool) -> RefreshOutcome:
        async with self._refresh_locks[name]:
            now = _now()
            current = self._ranges.get(name)
            shared: _Ranges | None = None
            if not force:
                if self._is_fresh(current, now):
                    return "fresh"
                if lazy and now < self._retry_at.get(name, -math.inf):
                    return "failed"  # the caller before us just failed: do not retry at once
                shared = await self._read_shared(name)
                if shared is not None and self._is_fresh(shared, now):
                    self._install(name, shared)
                    return "redis"
            cidrs = await self._fetch(name)
            if cidrs is None:
                if current is None and shared is not None:
                    self._install(name, shared)  # expired by our clock, better than nothing
                with self._state_lock:
                    self._retry_at[name] = _now() + self._retry_delay
                return "failed"
            fetched = _Ranges(IPRangeTable(cidrs), tuple(cidrs), _now())
            self._install(name, fetched)
            value = encode_cached(fetched.cidrs, fetched.fetched_at)
            ttl = self.config.cloud_ip_refresh_interval
            await self._store.documents.put(NAMESPACE, name, value, ttl=ttl)
            return "fetched"

    def _install(self, name: str, ranges: _Ranges) -> None:
        with self._state_lock:
            self._ranges[name] = ranges
            self._retry_at.pop(name, None)

    async def _read_shared(self, name: str) -> _Ranges | None:
        raw = await self._store.documents.get(NAMESPACE, name)
        if raw is None or isinstance(raw, Unavailable):
            return None
        try:
            fetched_at, cidrs = decode_cached(raw)
        except ValueError as exc:
            self.logger.warning(
                "Ignoring malformed %s ranges cached in Redis: %s", name, escape_control(str(exc))
            )
            return None
        # A writer whose clock runs ahead must not make the copy fresh beyond one interval.
        return _Ranges(IPRangeTable(cidrs), tuple(cidrs), min(fetched_at, _now()))

    async def _fetch(self, name: str) -> list[str] | None:
        url = self._urls[name]
        try:
            if self._http_client is not None:
                cidrs = await self._download(self._http_client, name, url)
            else:
                async with httpx.AsyncClient(timeout=FETCH_TIMEOUT) as client:
                    cidrs = await self._download(client, name, url)
        except Exception as exc:  # whatever went wrong, lookups keep the last good ranges
            self._fetch_failed(name, url, exc)
            return None
        with self._state_lock:
            recovered = name in self._failing
            self._failing.discard(name)
        if recovered:
            self.logger.info("%s cloud ranges fetched again (%d prefixes)", name, len(cidrs))
        return cidrs

    async def _download(self, client: httpx.AsyncClient, name: str, url: str) -> list[str]:
        body = await _get(client, url)
        if name == "Azure" and not body.lstrip().startswith(b"{"):
            # The download page, not the file: the weekly file's link is on it.
            body = await _get(client, find_azure_json_url(body.decode("utf-8", "replace")))
        return PARSERS[name](body)

    def _fetch_failed(self, name: str, url: str, exc: Exception) -> None:
        reason = escape_control(Redactor.for_url(url).scrub(f"{type(exc).__name__}: {exc}"))
        with self._state_lock:
            first = name not in self._failing
            self._failing.add(name)
        current = self._ranges.get(name)
        kept = len(current.cidrs) if current is not None else 0
        log = self.logger.warning if first else self.logger.debug
        log(
            "Could not fetch %s cloud ranges from %s (%s); keeping %d earlier prefixes",
            name,
            redact_url(url),
            reason,
            kept,
        )


async def _get(client: httpx.AsyncClient, url: str) -> bytes:
    """The body at `url`, bounded in size and in total time (a server that trickles bytes
    keeps each read within its timeout, so the whole download has a deadline too)."""
    deadline = time.monotonic() + DOWNLOAD_DEADLINE
    chunks: list[bytes] = []
    size = 0
    async with client.stream("GET", url, follow_redirects=True) as response:
        response.raise_for_status()
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > MAX_DOWNLOAD_BYTES:
                raise ValueError(f"response larger than {MAX_DOWNLOAD_BYTES} bytes")
            if time.monotonic() > deadline:
                raise TimeoutError(f"download took longer than {DOWNLOAD_DEADLINE} s")
            chunks.append(chunk)
    return b"".join(chunks)


def _check_url(name: str, url: str) -> None:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise ValueError(f"cloud_ip_urls[{name!r}] is not a valid URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"cloud_ip_urls[{name!r}] must be an http(s) URL with a host")
