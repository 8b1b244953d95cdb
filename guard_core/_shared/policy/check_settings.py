"""`CheckSettings`: what the request check does, validated at construction.

Pure; shared by both faces. The Redis side of things (URL, prefix, default rate limit, ban
length) stays in `SecurityConfig`; these settings say how requests are judged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from guard_core._shared.addresses import IPNetwork
from guard_core._shared.policy.attack_patterns import AttackPattern, compile_custom
from guard_core._shared.policy.client_address import (
    X_FORWARDED_FOR,
    ClientAddressResolver,
    check_forwarding_header,
    check_ipv6_prefix,
    parse_networks,
)
from guard_core._shared.policy.ip_ranges import check_provider
from guard_core._shared.policy.rate_limit_rules import (
    KeySpec,
    Limit,
    RouteRule,
    check_key,
    normalize_rules,
    parse_limits,
)
from guard_core._shared.policy.request_body import DEFAULT_BODY_MAX_BYTES
from guard_core._shared.policy.request_model import Decision


def _strings(what: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, tuple | list | frozenset | set):
        raise TypeError(f"{what} must be a list or tuple of str")
    if not all(isinstance(item, str) and item for item in value):
        raise ValueError(f"{what} must hold non-empty str values")
    return tuple(value)


def _number(what: str, value: object, *, low: float, integer: bool = False) -> None:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise TypeError(f"{what} must be {'an int' if integer else 'a number'}")
    if not low <= value <= 2**31 - 1:
        raise ValueError(f"{what} must be between {low} and {2**31 - 1} (got {value!r})")


#: The fields that hold lists of text.
LISTS = (
    "exempt_paths",
    "exempt_ips",
    "allow_ips",
    "deny_ips",
    "blocked_user_agents",
    "trusted_proxies",
    "block_cloud_providers",
)


@dataclass(frozen=True, kw_only=True)
class CheckSettings:
    """How requests are judged. Every field has a safe default.

    - `exempt_paths`: path prefixes never checked (`/health` covers `/health/live`).
    - `exempt_ips`: addresses or CIDRs never checked.
    - `allow_ips`: when not empty, only clients in these addresses or CIDRs are served; any
      other gets 403 (`denied`). `deny_ips`: clients in these are refused with 403
      (`denied`). Both are static (this configuration); the lists shared through Redis
      are the ban list (`Guard.ip_bans.ban_ip`) and the allow list (`Guard.allow_list`,
      whose entries are exempt as `exempt_ips`), both of addresses and CIDRs.
    - `blocked_user_agents`: RE2 patterns (case-insensitive, searched anywhere in the
      `User-Agent` header): a match gets 403 (`user_agent_blocked`), e.g. `("sqlmap",
      "nikto", r"^python-requests/")`.
    - `trusted_proxies` / `proxy_hops` / `forwarded_header`: whose forwarding header to
      believe, how many proxies deep, and which header they set (`"x-forwarded-for"`, the
      default, or `"forwarded"`; the other is ignored). A chain of more than 64 entries or
      8 KiB through a trusted proxy is refused (403 `denied`); see `client_address`.
    - `ipv6_prefix`: IPv6 clients share rate limits per network of this length (None: per
      address).
    - `passive`: decide, log and emit events, but never block (nor auto-ban).
    - `block_cloud_providers`: block clients inside these providers' published ranges
      (empty: the step is skipped and nothing is fetched).
    - `detect_patterns` / `scan_headers`: scan path and query (and these headers) for attack
      patterns, decoded as `request_decoding` says.
    - `body_max_bytes`: the first this many bytes of a form, JSON, multipart (text fields)
      or text body are scanned too (see `request_body`); the rest is not read for the check
      and streams on to the application. 0 turns body scanning off.
    - `default_limits`: a limit string for every client across all routes; None uses
      `SecurityConfig.rate_limit` per `rate_limit_window`; "" turns it off.
    - `rules`: route template -> `RouteRule` or limit string; a route's own limits apply
      per client and route template, on top of the default ones.
    - `key`: the default rate-limit key ("ip", "user", "header:<name>" or a callable).
    - `auto_ban_threshold` / `auto_ban_window` / `auto_ban_duration`: ban a client after
      more than this many attack-pattern hits in the window, counted across instances;
      threshold None turns it off; duration None uses
      `SecurityConfig.ip_ban_default_duration`. `auto_ban_on_rate_limit=True` counts
      rate-limit rejections (429s) too; by default they are not counted, so a client that
      retries a limited route keeps getting 429, not a site-wide ban.
    - `ratelimit_headers` / `x_ratelimit_headers`: send the IETF `RateLimit*` headers and
      the `X-RateLimit-*` trio; `security_headers`: add the configured security headers.
    - `observers`: callables given each decision and the seconds the check took (e.g.
      `guard_core.metrics.PrometheusMetrics()`); one that raises is logged, never fatal.
    """

    exempt_paths: tuple[str, ...] = ()
    exempt_ips: tuple[str, ...] = ()
    allow_ips: tuple[str, ...] = ()
    deny_ips: tuple[str, ...] = ()
    blocked_user_agents: tuple[str, ...] = ()
    trusted_proxies: tuple[str, ...] = ()
    proxy_hops: int = 1
    forwarded_header: str = X_FORWARDED_FOR
    ipv6_prefix: int | None = 64
    passive: bool = False
    block_cloud_providers: tuple[str, ...] = ()
    detect_patterns: bool = True
    scan_headers: tuple[str, ...] = ()
    body_max_bytes: int = DEFAULT_BODY_MAX_BYTES
    default_limits: str | None = None
    rules: Mapping[str, RouteRule | str] = field(default_factory=dict)
    key: KeySpec = "ip"
    auto_ban_threshold: int | None = 10
    auto_ban_window: float = 60.0
    auto_ban_duration: int | None = None
    auto_ban_on_rate_limit: bool = False
    ratelimit_headers: bool = True
    x_ratelimit_headers: bool = True
    security_headers: bool = True
    observers: tuple[Callable[[Decision, float], None], ...] = ()

    def __post_init__(self) -> None:
        for name in LISTS:
            object.__setattr__(self, name, _strings(name, getattr(self, name)))
        object.__setattr__(
            self,
            "scan_headers",
            tuple(h.lower() for h in _strings("scan_headers", self.scan_headers)),
        )
        for provider in self.block_cloud_providers:
            check_provider(provider)  # an unknown name fails here, not on a request
        for path in self.exempt_paths:
            if not path.startswith("/"):
                raise ValueError(f"exempt path {path!r} must start with '/'")
        for name in ("passive", "detect_patterns", "ratelimit_headers", "x_ratelimit_headers",
                     "security_headers", "auto_ban_on_rate_limit"):  # fmt: skip
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool")
        check_ipv6_prefix(self.ipv6_prefix)
        object.__setattr__(self, "forwarded_header", check_forwarding_header(self.forwarded_header))
        _number("body_max_bytes", self.body_max_bytes, low=0, integer=True)
        if isinstance(self.observers, str) or not isinstance(self.observers, tuple | list):
            raise TypeError("observers must be a tuple of callables")
        if not all(callable(observer) for observer in self.observers):
            raise TypeError("every observer must be callable (decision, seconds)")
        object.__setattr__(self, "observers", tuple(self.observers))
        if self.default_limits is not None and self.default_limits != "":
            parse_limits(self.default_limits)
        object.__setattr__(self, "rules", normalize_rules(self.rules))
        object.__setattr__(self, "key", check_key(self.key))
        if self.auto_ban_threshold is not None:
            _number("auto_ban_threshold", self.auto_ban_threshold, low=1, integer=True)
        _number("auto_ban_window", self.auto_ban_window, low=0.001)
        if self.auto_ban_duration is not None:
            _number("auto_ban_duration", self.auto_ban_duration, low=1, integer=True)
        # validated here so that a bad address fails at construction
        self.resolver()
        self.exempt_networks()
        self.allowed_networks()
        self.denied_networks()
        self.user_agent_patterns()

    def resolver(self) -> ClientAddressResolver:
        return ClientAddressResolver(
            self.trusted_proxies, hops=self.proxy_hops, header=self.forwarded_header
        )

    def exempt_networks(self) -> tuple[IPNetwork, ...]:
        return parse_networks("exempt_ips", self.exempt_ips)

    def allowed_networks(self) -> tuple[IPNetwork, ...]:
        return parse_networks("allow_ips", self.allow_ips)

    def denied_networks(self) -> tuple[IPNetwork, ...]:
        return parse_networks("deny_ips", self.deny_ips)

    def user_agent_patterns(self) -> tuple[AttackPattern, ...]:
        """`blocked_user_agents` compiled (ValueError naming a pattern RE2 refuses)."""
        compiled = []
        for pattern in self.blocked_user_agents:
            try:
                regex = compile_custom(pattern)
            except ValueError as exc:
                raise ValueError(f"blocked_user_agents: {exc}") from None
            compiled.append(AttackPattern(pattern, "user_agent", regex))
        return tuple(compiled)

    def default_limit_list(self, rate_limit: int, window: float) -> tuple[Limit, ...]:
        """The limits applied to every request (`SecurityConfig`'s when not given)."""
        if self.default_limits == "":
            return ()
        if self.default_limits is None:
            seconds = max(1, round(window))
            return (Limit(count=rate_limit, window=seconds, text=f"{rate_limit}/{seconds}s"),)
        return parse_limits(self.default_limits)
