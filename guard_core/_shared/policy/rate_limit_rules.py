"""Rate-limit rules: limit strings, key functions, per-route rules and the response headers.

Pure (no I/O); both faces' request checks use it.

- Limit strings: `"5/minute"`, `"100/hour;1000/day"`, `"10 per 30 seconds"`; several limits
  are separated by `;` or `,`, each with its own window.
- Keys: `"ip"` (the client address, IPv6 grouped by prefix), `"user"` (the authenticated
  user, else the address), `"header:X-Api-Key"` (that header, else the address), or a
  callable taking the `RequestInfo` and returning a str (or `None` for the address).
- `Retry-After` is whole seconds rounded up (`reset_after` is a float: never send it raw).
- Headers: `RateLimit-Policy` and `RateLimit` as the IETF httpapi draft has them
  (`"60s";q=5;w=60` and `"60s";r=0;t=12`), and the `X-RateLimit-Limit`/`-Remaining`/
  `-Reset` trio (`-Reset` in seconds from now).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from guard_core._shared.policy.request_model import LimitState, RequestInfo

UNITS: Mapping[str, int] = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}
_LIMIT = re.compile(r"^\s*(\d{1,12})\s*(?:/|per)\s*(\d{1,9})?\s*([a-z]+?)s?\s*$", re.IGNORECASE)
#: The attribute a `guard_rule`-decorated view carries.
RULE_ATTRIBUTE = "__guard_rule__"

KeyFunction = Callable[[RequestInfo], "str | None"]
KeySpec = str | KeyFunction


@dataclass(frozen=True)
class Limit:
    """`count` requests per `window` seconds."""

    count: int
    window: int
    text: str

    @property
    def name(self) -> str:
        """The policy name in the RateLimit headers."""
        return f"{self.window}s"


def parse_limits(text: object) -> tuple[Limit, ...]:
    """The limits in a limit string; ValueError naming the bad part."""
    if not isinstance(text, str):
        raise TypeError(f"limits must be a str such as '5/minute', not {type(text).__name__}")
    limits: list[Limit] = []
    for part in re.split(r"[;,]", text):
        if not part.strip():
            continue
        match = _LIMIT.match(part)
        unit = match.group(3).lower() if match else ""
        if match is None or unit not in UNITS:
            raise ValueError(f"not a limit: {part.strip()!r} (expected e.g. '5/minute')")
        count = int(match.group(1))
        window = int(match.group(2) or 1) * UNITS[unit]
        if count < 1 or window < 1:
            raise ValueError(f"limit {part.strip()!r} must count at least 1 per at least 1 s")
        if any(existing.window == window for existing in limits):
            raise ValueError(f"two limits with the same window in {text!r}")
        limits.append(Limit(count=count, window=window, text=part.strip()))
    if not limits:
        raise ValueError(f"no limit in {text!r} (expected e.g. '5/minute;100/hour')")
    return tuple(limits)


def check_key(key: object) -> KeySpec:
    if callable(key):
        return key
    if not isinstance(key, str):
        raise TypeError(f"key must be 'ip', 'user', 'header:<name>' or a callable, not {key!r}")
    if key in ("ip", "user"):
        return key
    if key.startswith("header:") and key[len("header:") :].strip():
        return key
    raise ValueError(f"key must be 'ip', 'user', 'header:<name>' or a callable (got {key!r})")


def key_of(key: KeySpec, request: RequestInfo, address: str | None) -> str | None:
    """The rate-limit identity of a request under `key`; the address when the key has none."""
    found: str | None
    if callable(key):
        found = key(request)
    elif key == "user":
        found = f"user:{request.user}" if request.user else None
    elif key.startswith("header:"):
        value = request.headers.get(key[len("header:") :].strip().lower())
        found = f"header:{value}" if value else None
    else:
        found = None
    if found is not None and not isinstance(found, str):
        raise TypeError(f"a key function must return a str or None, not {type(found).__name__}")
    return found or address


@dataclass(frozen=True)
class RouteRule:
    """What one route asks of the check: its own limits, another key, or no check at all."""

    limits: tuple[Limit, ...] | None = None
    key: KeySpec | None = None
    exempt: bool = False


def make_rule(
    limits: str | None = None, *, key: KeySpec | None = None, exempt: bool = False
) -> RouteRule:
    if not isinstance(exempt, bool):
        raise TypeError("exempt must be a bool")
    return RouteRule(
        limits=None if limits is None else parse_limits(limits),
        key=None if key is None else check_key(key),
        exempt=exempt,
    )


F = TypeVar("F", bound=Callable[..., Any])


def guard_rule(
    limits: str | None = None, *, key: KeySpec | None = None, exempt: bool = False
) -> Callable[[F], F]:
    """Attach a rule to a view (FastAPI/Starlette endpoint, Flask view, Django view):

        @app.get("/login")
        @guard_rule("5/minute;20/hour", key="ip")
        async def login(): ...

    The decorator goes below the framework's route decorator, so the framework registers
    the marked function.
    """
    rule = make_rule(limits, key=key, exempt=exempt)

    def mark(view: F) -> F:
        setattr(view, RULE_ATTRIBUTE, rule)
        return view

    return mark


def rate_limit(limits: str, *, key: KeySpec | None = None) -> Callable[[F], F]:
    """`guard_rule(limits, key=key)`: this route's own limits."""
    return guard_rule(limits, key=key)


def exempt(view: F) -> F:
    """Mark a view as not checked at all (health checks, metrics)."""
    return guard_rule(exempt=True)(view)


def rule_of(view: object) -> RouteRule | None:
    """The rule attached to a view (or to the function it wraps), if any."""
    for candidate in (view, getattr(view, "__wrapped__", None)):
        rule = getattr(candidate, RULE_ATTRIBUTE, None)
        if isinstance(rule, RouteRule):
            return rule
    return None


def normalize_rules(rules: Mapping[str, RouteRule | str] | None) -> dict[str, RouteRule]:
    """A route-template -> rule mapping; a str value is a limit string."""
    if rules is None:
        return {}
    if not isinstance(rules, Mapping):
        raise TypeError("rules must map route templates to RouteRule or limit strings")
    found: dict[str, RouteRule] = {}
    for template, rule in rules.items():
        if not isinstance(template, str) or not template:
            raise ValueError(f"a rule's route template must be a non-empty str (got {template!r})")
        if isinstance(rule, str):
            rule = make_rule(rule)
        if not isinstance(rule, RouteRule):
            raise TypeError(f"rule for {template!r} must be a RouteRule or a limit string")
        found[template] = rule
    return found


def retry_after(seconds: float) -> int:
    """`Retry-After` in whole seconds, rounded up, at least 1."""
    if not math.isfinite(seconds):
        return 1
    return max(1, math.ceil(seconds))


def limit_state(limit: Limit, *, remaining: int, reset_after: float, allowed: bool) -> LimitState:
    return LimitState(
        policy=limit.text,
        limit=limit.count,
        window=limit.window,
        remaining=max(0, remaining),
        reset=retry_after(reset_after) if reset_after > 0 else 0,
        allowed=allowed,
    )


def tightest(states: Iterable[LimitState]) -> LimitState | None:
    """The state to report: a blocking one first, else the one with the fewest remaining."""
    ordered = sorted(states, key=lambda s: (s.allowed, s.remaining, -s.reset))
    return ordered[0] if ordered else None


def ratelimit_headers(
    states: tuple[LimitState, ...], *, ietf: bool = True, x_headers: bool = True
) -> dict[str, str]:
    """The rate-limit response headers for these states (empty when there are none)."""
    shown = tightest(states)
    if shown is None:
        return {}
    headers: dict[str, str] = {}
    if ietf:
        headers["RateLimit-Policy"] = ", ".join(
            f'"{s.window}s";q={s.limit};w={s.window}' for s in states
        )
        headers["RateLimit"] = f'"{shown.window}s";r={shown.remaining};t={shown.reset}'
    if x_headers:
        headers["X-RateLimit-Limit"] = str(shown.limit)
        headers["X-RateLimit-Remaining"] = str(shown.remaining)
        headers["X-RateLimit-Reset"] = str(shown.reset)
    return headers
