"""Read-only views of the shared state for the command, through the sync face's public API.

Everything here reads; changes go through the subsystems (`guard.ip_bans.ban_ip`, ...), so
the command writes exactly what an application instance would.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from guard_core._shared.keys import (
    CLOUD_RANGES,
    NAMESPACES,
    RATE_LIMIT,
    rate_window_key,
    route_endpoint,
)
from guard_core._shared.redaction import Redactor, redact_url
from guard_core._shared.validation import parse_json
from guard_core.exceptions import GuardRedisError
from guard_core_sync import Guard

#: The namespaces guard-core writes (the key layout: `{prefix}{namespace}:{key}`).
KNOWN_NAMESPACES = tuple(NAMESPACES)
#: INFO fields shown by `status` (with `server_name` and `server_version`, see `server_info`).
SERVER_FIELDS = (
    "redis_version",
    "redis_mode",
    "role",
    "uptime_in_seconds",
    "connected_clients",
    "used_memory_human",
    "maxmemory_policy",
)


class CommandError(Exception):
    """An expected failure: the command prints the message on one line and exits 1."""


def describe_failure(guard: Guard, exc: BaseException | None = None) -> str:
    """Why Redis did not answer, with every credential of the URL masked."""
    redactor = Redactor.for_url(guard.config.redis_url)
    cause = exc.__cause__ if exc is not None and exc.__cause__ is not None else exc
    if cause is not None and not isinstance(cause, GuardRedisError):
        reason = f"{type(cause).__name__}: {cause}"
    else:
        reason = str(guard.redis.breaker_snapshot().get("last_error") or "no answer")
    return redactor.scrub(reason)


def where(guard: Guard) -> str:
    """`redis://127.0.0.1:6379/0 (prefix guard_core:)`, credentials masked."""
    return f"{redact_url(guard.config.redis_url)} (prefix {guard.config.redis_prefix})"


def require_redis(guard: Guard) -> None:
    """Fail with one line unless Redis answers: the command's own memory is not shared, so a
    change made without Redis would be lost when the command exits."""
    if not guard.config.enable_redis:
        raise CommandError(
            "Redis is disabled (GUARD_CORE_ENABLE_REDIS=false): there is no shared state to use"
        )
    if not guard.redis.ping():
        raise CommandError(f"Redis at {where(guard)} is unreachable: {describe_failure(guard)}")


def read(guard: Guard, func: Any) -> Any:
    """`func(conn)` through the manager; a Redis failure becomes a `CommandError`."""
    try:
        return guard.redis.safe_operation(func)
    except GuardRedisError as exc:
        raise CommandError(
            f"Redis at {where(guard)} failed: {describe_failure(guard, exc)}"
        ) from None


def server_info(guard: Guard) -> dict[str, Any]:
    """The server's version, mode, role and memory (empty when INFO is not permitted)."""
    try:
        info = guard.redis.safe_operation(lambda conn: conn.info())
    except GuardRedisError:
        return {}
    return server_fields(info)


def server_fields(info: dict[str, Any]) -> dict[str, Any]:
    """The `SERVER_FIELDS` of an INFO reply, and which server it is in `server_name`
    (`redis` or `valkey`) and `server_version` (its own version).

    Valkey's `redis_version` is the Redis version it answers as (7.2.4 for Valkey 8), its
    own is `valkey_version`; Valkey 8 names its mode `server_mode` only, not `redis_mode`.
    """
    found = {name: info[name] for name in SERVER_FIELDS if name in info}
    if "redis_mode" not in found and "server_mode" in info:
        found["redis_mode"] = info["server_mode"]
    name = str(info.get("server_name") or "redis").lower()
    version = info.get(f"{name}_version", info.get("redis_version"))
    if version is not None or "server_name" in info:
        found["server_name"] = name
        found["server_version"] = version
    return found


def latency_ms(guard: Guard, samples: int = 5) -> dict[str, float]:
    """Round-trip time of PING in milliseconds: min, median, max."""
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        read(guard, lambda conn: conn.ping())
        times.append((time.perf_counter() - start) * 1000)
    return {
        "min": round(min(times), 3),
        "median": round(statistics.median(times), 3),
        "max": round(max(times), 3),
    }


def split_key(guard: Guard, full_key: str) -> tuple[str, str]:
    """`{prefix}{namespace}:{key}` -> (namespace, key), in the manager's layout (the key part
    of a Cluster key is read out of its hash tag)."""
    namespace = full_key[len(guard.config.redis_prefix) :].partition(":")[0]
    try:
        return namespace, guard.redis.key_part(namespace, full_key)
    except ValueError:  # not of guard-core's layout (written by something else)
        return namespace, full_key[len(guard.config.redis_prefix) + len(namespace) + 1 :]


def namespace_counts(guard: Guard) -> dict[str, int]:
    """Keys under the prefix per namespace (guard-core's namespaces always listed)."""
    keys = guard_keys(guard, "*")
    counts = Counter(split_key(guard, key)[0] for key in keys)
    result = dict.fromkeys(KNOWN_NAMESPACES, 0)
    result.update(counts)
    return result


def guard_keys(guard: Guard, pattern: str) -> list[str]:
    """Full names of the keys matching `{prefix}{pattern}` (SCAN), sorted."""
    try:
        found = guard.redis.keys(pattern)
    except GuardRedisError as exc:
        raise CommandError(
            f"Redis at {where(guard)} failed: {describe_failure(guard, exc)}"
        ) from None
    return sorted(found or [])


@dataclass(frozen=True)
class KeyInfo:
    key: str
    type: str
    #: Seconds left, or None for a key without expiry.
    ttl: float | None


def describe_keys(guard: Guard, keys: list[str]) -> list[KeyInfo]:
    """Type and time to live of each key, in one round trip."""
    if not keys:
        return []

    def _describe(conn: Any) -> list[Any]:
        with conn.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.type(key)
                pipe.pttl(key)
            result: list[Any] = pipe.execute()
            return result

    replies = read(guard, _describe)
    described = []
    for index, key in enumerate(keys):
        kind, pttl = replies[2 * index], int(replies[2 * index + 1])
        described.append(KeyInfo(key, str(kind), None if pttl < 0 else pttl / 1000))
    return described


def window_endpoint(endpoint: str, route: str | None, window: float) -> str:
    """The endpoint part of a window's key: `endpoint` as given to `RateLimitManager.check`,
    or, for a `route` of an adapter-protected application, the route and the window of the
    limit, as the adapters count it (`/login|60s`; `*` for the limits of every route)."""
    if route is None:
        return endpoint
    if endpoint:
        raise CommandError("give --endpoint or --route, not both")
    if window != int(window):
        raise CommandError(f"the adapters count whole seconds: --window {window} is not one")
    return route_endpoint(route, int(window))


@dataclass(frozen=True)
class RateWindow:
    key: str
    hits: int
    limit: int
    window: float
    #: Seconds until the oldest hit in the window leaves it (0 when empty).
    reset_after: float

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.hits)


def rate_window(
    guard: Guard, identifier: str, endpoint: str, *, limit: int, window: float
) -> RateWindow:
    """The hits of one window now, on the server's clock, without counting a hit."""
    try:
        key = rate_window_key(identifier, endpoint)
    except (TypeError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    full_key = guard.redis.full_key(RATE_LIMIT, key)

    def _read(conn: Any) -> tuple[Any, Any]:
        # two round trips: a Cluster client pipelines no TIME (it belongs to no slot)
        return conn.time(), conn.zrange(full_key, 0, -1, withscores=True)

    (seconds, micros), members = read(guard, _read)
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    window_ms = max(1, round(window * 1000))
    scores = [float(score) for _, score in members if float(score) > now_ms - window_ms]
    reset_after = (min(scores) + window_ms - now_ms) / 1000 if scores else 0.0
    return RateWindow(
        key=full_key, hits=len(scores), limit=limit, window=window, reset_after=reset_after
    )


def cloud_cache(guard: Guard) -> list[dict[str, Any]]:
    """The cloud-range lists cached in Redis: provider, ranges held, age, time left."""
    keys = guard_keys(guard, f"{CLOUD_RANGES}:*")
    if not keys:
        return []
    described = {info.key: info for info in describe_keys(guard, keys)}
    values = read(guard, lambda conn: conn.mget(keys))
    now = time.time()
    rows = []
    for key, raw in zip(keys, values, strict=True):
        provider = split_key(guard, key)[1]
        ranges: int | None = None
        age: float | None = None
        try:
            document = parse_json(raw, "cached ranges") if raw is not None else None
            if isinstance(document, dict):
                ranges = len(document.get("cidrs", []))
                age = round(now - float(document["fetched_at"]), 1)
        except (ValueError, TypeError, KeyError):
            pass
        ttl = described[key].ttl
        rows.append({"provider": provider, "ranges": ranges, "age": age, "ttl": ttl})
    return rows
