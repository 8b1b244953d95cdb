"""Configuration and event models shared by both faces."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from guard_core._shared.connection.redis_url import Topology, parse_redis_url, topology_of
from guard_core._shared.redaction import redact_url
from guard_core._shared.results import RateLimitResult as RateLimitResult  # its public home
from guard_core._shared.validation import MAX_TTL, shown_number

#: `SecurityConfig.rate_limit_outage_policy` values (see
#: `guard_core._shared.storage.outage_windows`).
OUTAGE_POLICIES = ("share", "local", "deny")


def _require_bool(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be a bool, not {type(value).__name__}")


def _require_number(name: str, value: object, *, minimum: float, allow_zero: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, not {type(value).__name__}")
    # NaN and infinities fail the comparisons; math.isfinite would overflow on a huge int
    if not minimum <= value <= MAX_TTL or (value == minimum and not allow_zero):
        bound = f">= {minimum}" if allow_zero else f"> {minimum}"
        raise ValueError(f"{name} must be {bound} and <= {MAX_TTL} (got {shown_number(value)})")


def _require_int(name: str, value: object, *, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high} (got {shown_number(value)})")


def _check_redis_url(url: object) -> None:
    if url is not None:
        parse_redis_url(url)


@dataclass(frozen=True, kw_only=True, repr=False)
class SecurityConfig:
    """Settings of guard-core, validated at construction (a bad field raises `ValueError`).

    Connection tuning is bounded so that a slow or hung Redis costs at most about one
    timeout per connection attempt rather than stalling requests.
    """

    enable_redis: bool = True
    redis_url: str | None = "redis://localhost:6379"
    redis_prefix: str = "guard_core:"
    #: Seconds to wait for a TCP/TLS connection to Redis.
    redis_connect_timeout: float = 1.0
    #: Seconds to wait for a reply on an open connection.
    redis_socket_timeout: float = 1.0
    #: Connections in the pool shared by all callers of one manager.
    redis_max_connections: int = 50
    #: Seconds a caller waiting for a pooled connection waits with none coming free before it
    #: gives up (`RedisBusyError`); never less than `redis_socket_timeout`, and the wait goes
    #: on while connections keep coming free.
    redis_pool_timeout: float = 1.0
    #: Retries of a command whose connection dropped (0 disables retrying); a timeout is never
    #: retried, so a hung Redis costs one timeout.
    redis_retries: int = 1
    #: Exponential backoff between retries, in seconds: first step, then capped.
    redis_retry_backoff_base: float = 0.01
    redis_retry_backoff_cap: float = 0.1
    #: Circuit breaker: after a connection failure or timeout, calls fail fast for this many
    #: seconds before one call probes Redis; each failed probe doubles the wait, up to the cap.
    redis_breaker_base_delay: float = 0.5
    redis_breaker_max_delay: float = 10.0
    #: Seconds between re-reads of shared settings cached locally (custom patterns, header
    #: configuration, network bans): how soon one instance sees another's change.
    redis_state_refresh_interval: float = 5.0
    #: Seconds between checks by the outage journal's background flusher (started by `Guard`):
    #: writes Redis could not take are replayed this soon after it answers again, even on an
    #: instance that gets no traffic.
    redis_journal_flush_interval: float = 1.0
    #: Seconds `Guard.close()` spends at most writing the journal to Redis before closing.
    redis_close_flush_timeout: float = 2.0
    #: Seconds a lifted ban (or a removed pattern) is remembered in Redis, so that an older ban
    #: written back later by another instance cannot undo the lift: the longest outage after
    #: which "a lift made after a ban wins" still holds.
    redis_lift_memory: int = 86_400

    # -- rate limiting ------------------------------------------------------------------
    #: Requests admitted per identifier (and endpoint) in each sliding window.
    rate_limit: int = 100
    #: Sliding window length, in seconds.
    rate_limit_window: float = 60.0
    #: Identifiers tracked in memory when Redis is unavailable (least recently used dropped).
    rate_limit_max_tracked: int = 10_000
    #: What rate limits do while Redis is unavailable: "share" (each instance admits its
    #: share of what is left of the shared limit, split between the instances alive when
    #: Redis went away), "local" (each instance counts for itself: N instances admit up to
    #: N times the limit) or "deny" (fail closed: every rate-limited request is refused).
    rate_limit_outage_policy: str = "share"
    #: Seconds after its last heartbeat an instance stops counting among the live instances
    #: that split a limit during an outage (heartbeats go out every
    #: `redis_journal_flush_interval` seconds while Redis answers).
    rate_limit_member_timeout: float = 10.0
    #: Local quota leases (`guard_core._shared.storage.window_leases`): an instance that keeps
    #: hitting one key records up to this share of its limit in Redis at once and admits
    #: from it in memory for up to this share of the window, instead of one round trip per
    #: hit. Over-admission is bounded by this share of the limit per instance; limits below
    #: 2 / share (200 at the default 1 %) are never leased. 0 sends every hit to Redis.
    rate_limit_lease: float = 0.01

    # -- IP bans ------------------------------------------------------------------------
    #: Ban length used when a caller gives none, in seconds.
    ip_ban_default_duration: int = 3600
    #: Bans kept in memory (the fallback `TTLCache`).
    ip_ban_max_entries: int = 10_000
    #: Address bans made anywhere that each instance mirrors from Redis, to enforce them
    #: during an outage (about 130 bytes each; past it the bans that end soonest go).
    ip_ban_mirror_max_entries: int = 1_048_576

    # -- cloud provider ranges ----------------------------------------------------------
    #: Providers whose published ranges are fetched.
    cloud_providers: tuple[str, ...] = ("AWS", "GCP", "Azure")
    #: Seconds a fetched range list stays cached in Redis (and in memory) before refetching.
    cloud_ip_refresh_interval: int = 3600
    #: Per-provider URL overrides of the published range files (tests point these locally).
    cloud_ip_urls: Mapping[str, str] = field(default_factory=dict)

    # -- suspicious patterns ------------------------------------------------------------
    #: Characters of each request part scanned for attack patterns (1 MiB at least: a
    #: smaller value is raised to 1,048,576, so a payload cannot hide behind padding).
    pattern_max_content_length: int = 1_048_576

    # -- behaviour tracking -------------------------------------------------------------
    #: (endpoint, client) pairs tracked in memory when Redis is unavailable.
    behavior_max_tracked: int = 10_000

    def __post_init__(self) -> None:
        _require_bool("enable_redis", self.enable_redis)
        _check_redis_url(self.redis_url)
        if not isinstance(self.redis_prefix, str):
            raise ValueError(f"redis_prefix must be a str, not {type(self.redis_prefix).__name__}")
        if not self.redis_prefix:
            raise ValueError("redis_prefix must not be empty")
        if any(ch.isspace() or not ch.isprintable() for ch in self.redis_prefix):
            raise ValueError("redis_prefix must not contain whitespace or control characters")
        if topology_of(self.redis_url) is Topology.CLUSTER and any(
            ch in self.redis_prefix for ch in "{}"
        ):
            raise ValueError(
                "redis_prefix must not contain '{' or '}' with a Cluster redis_url: in Cluster "
                "mode the key part is the hash tag, and braces in the prefix would take its place"
            )
        for name in ("redis_connect_timeout", "redis_socket_timeout", "redis_pool_timeout"):
            _require_number(name, getattr(self, name), minimum=0, allow_zero=False)
        _require_int("redis_max_connections", self.redis_max_connections, low=1, high=100_000)
        _require_int("redis_retries", self.redis_retries, low=0, high=10)
        for low, high in (
            ("redis_retry_backoff_base", "redis_retry_backoff_cap"),
            ("redis_breaker_base_delay", "redis_breaker_max_delay"),
        ):
            _require_number(low, getattr(self, low), minimum=0, allow_zero=True)
            _require_number(high, getattr(self, high), minimum=0, allow_zero=True)
            if getattr(self, high) < getattr(self, low):
                raise ValueError(f"{high} must be >= {low}")
        for name in (
            "redis_state_refresh_interval",
            "rate_limit_window",
            "redis_journal_flush_interval",
            "rate_limit_member_timeout",
        ):
            _require_number(name, getattr(self, name), minimum=0, allow_zero=False)
        _require_int("rate_limit", self.rate_limit, low=1, high=10_000_000)
        _require_number("rate_limit_lease", self.rate_limit_lease, minimum=0, allow_zero=True)
        if self.rate_limit_lease > 0.5:
            raise ValueError(
                f"rate_limit_lease must be at most 0.5 (got {self.rate_limit_lease!r})"
            )
        if self.rate_limit_outage_policy not in OUTAGE_POLICIES:
            raise ValueError(
                f"rate_limit_outage_policy must be one of {', '.join(OUTAGE_POLICIES)}"
                f" (got {self.rate_limit_outage_policy!r})"
            )
        _require_number(
            "redis_close_flush_timeout", self.redis_close_flush_timeout, minimum=0, allow_zero=True
        )
        _require_int("redis_lift_memory", self.redis_lift_memory, low=1, high=MAX_TTL)
        _require_int("ip_ban_default_duration", self.ip_ban_default_duration, low=1, high=MAX_TTL)
        _require_int(
            "ip_ban_mirror_max_entries", self.ip_ban_mirror_max_entries, low=1, high=100_000_000
        )
        _require_int(
            "cloud_ip_refresh_interval", self.cloud_ip_refresh_interval, low=1, high=MAX_TTL
        )
        for name in (
            "rate_limit_max_tracked",
            "ip_ban_max_entries",
            "pattern_max_content_length",
            "behavior_max_tracked",
        ):
            _require_int(name, getattr(self, name), low=1, high=100_000_000)
        if not isinstance(self.cloud_providers, tuple) or not all(
            isinstance(p, str) and p for p in self.cloud_providers
        ):
            raise ValueError("cloud_providers must be a tuple of non-empty provider names")
        if not isinstance(self.cloud_ip_urls, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.cloud_ip_urls.items()
        ):
            raise ValueError("cloud_ip_urls must map provider names to URL strings")

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            if not f.repr:
                continue
            value = getattr(self, f.name)
            if f.name == "redis_url":
                value = redact_url(value)
            shown.append(f"{f.name}={value!r}")
        return f"SecurityConfig({', '.join(shown)})"


@dataclass(frozen=True)
class SecurityEvent:
    """An event sent to the agent handler (`agent.send_event(event)`)."""

    event_type: str
    action_taken: str
    reason: str
    ip_address: str = "system"
    metadata: dict[str, Any] = field(default_factory=dict)
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class GuardHealth:
    """What `Guard.health()` reports.

    `status` is "redis" (state shared through Redis), "degraded" (Redis enabled but not
    answering: every subsystem answers from memory) or "disabled" (Redis switched off).
    """

    status: str
    #: Each subsystem's mode: "shared" or "memory".
    subsystems: dict[str, str]
    #: Details of the Redis connection (URL with credentials masked, the breaker's counters).
    redis: dict[str, Any] = field(default_factory=dict)
    #: Writes each subsystem holds for Redis until it answers again (no lost writes).
    pending_writes: dict[str, int] = field(default_factory=dict)
    #: Entries each bounded memory fallback dropped to stay within its bound, since start-up:
    #: live bans ("ip_bans"), live windows ("rate_limits", "behavior"), pending changes of
    #: the outage journal ("journal"). Each store logs one WARNING when it fills.
    evictions: dict[str, int] = field(default_factory=dict)
    #: Instances sharing rate limits, as this one's last answered heartbeat saw them (itself
    #: included; 1 until a heartbeat is answered, and the last count seen while Redis is
    #: down). During an outage each instance admits its share of a limit by this count.
    live_instances: int = 1
    #: The local mirror of the shared bans, answering during an outage: "ready" (a full
    #: copy was loaded; False for an instance started during an outage, which then knows
    #: only its own bans), "address_bans" and "network_bans" held, "version" (Redis's
    #: version of the address bans as last read), "age" (seconds since it was last checked
    #: against Redis; None: never) and "evictions" (bans dropped to stay within
    #: `ip_ban_mirror_max_entries`).
    mirror: dict[str, Any] = field(default_factory=dict)
    #: True while a write-back is due or under way (Redis came back, or restarted without its
    #: data, and the background flusher has not written everything back yet).
    writing_back: bool = False
