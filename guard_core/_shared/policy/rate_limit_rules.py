"""Rate-limit rules: limit strings, key functions, per-route rules and the response headers.

Pure (no I/O); both faces' request checks use it.

- Limit strings: `"5/minute"`, `"100/hour;1000/day"`, `"10 per 30 seconds"`, `"1000/month"`
  (30 days), `"10000/year"` (365 days); several limits are separated by `;` or `,`, each
  with its own window. A rule's limits may also be a callable that returns such a string
  for each request (`lambda request: "100/minute" if request.user else "10/minute"`).
- Keys: `"ip"` (the client address, IPv6 grouped by prefix), `"user"` (the authenticated
  user, else the address), `"header:X-Api-Key"` (that header, else the address), or a
  callable taking the `RequestInfo` and returning a str (or `None` for the address).
- `Retry-After` is whole seconds rounded up (`reset_after` is a float: never send it raw).
- Headers: `RateLimit-Policy` and `RateLimit` as the IETF httpapi draft has them
  (`"5-per-60s";q=5;w=60` and `"5-per-60s";r=0;t=12`: each policy is named by its count
  and window, and a route's or a shared scope's policy that would repeat a name gets the
  scope as a suffix), and the `X-RateLimit-Limit`/`-Remaining`/`-Reset` trio (`-Reset` in
  seconds from now).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from guard_core._shared.policy.request_model import LimitState, RequestInfo, built
from guard_core._shared.validation import check_cost

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
    "month": 2_592_000,  # 30 days
    "year": 31_536_000,  # 365 days
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
        """The policy name in the RateLimit headers: `5-per-60s`."""
        return f"{self.count}-per-{self.window}s"


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


#: A rule's limits: a limit string parsed once, or a callable giving one per request.
LimitFunction = Callable[[RequestInfo], str]
Condition = Callable[[RequestInfo], bool]
CostFunction = Callable[[RequestInfo], int]


@dataclass(frozen=True)
class RouteRule:
    """What one route asks of the check: its own limits, another key, or no check at all.

    - `limits`: parsed limits, or `limits_of`: a callable returning a limit string per
      request (parsed once per distinct string).
    - `scope`: a shared limit's name: every route with the same scope counts in one
      window (`shared_limit`); otherwise each route template counts on its own.
    - `exempt_when`: a callable; when it returns True the route's limits are skipped for
      that request (the default limits still apply).
    - `cost`: how many hits one request counts for against the route's own limits (an int,
      or a callable of the request; 1 to 1000): an export may cost 10 where a page costs 1.
    """

    limits: tuple[Limit, ...] | None = None
    key: KeySpec | None = None
    exempt: bool = False
    limits_of: LimitFunction | None = None
    scope: str | None = None
    exempt_when: Condition | None = None
    cost: int | CostFunction = 1

    def cost_of(self, request: RequestInfo) -> int:
        """The hits `request` counts for against this rule's limits."""
        cost = self.cost
        if callable(cost):
            return check_cost(cost(request))
        return cost

    def limits_for(self, request: RequestInfo) -> tuple[Limit, ...]:
        """The limits that apply to `request` under this rule (none when exempted)."""
        if self.exempt_when is not None and self.exempt_when(request):
            return ()
        if self.limits_of is not None:
            return _dynamic_limits(self.limits_of(request))
        return self.limits or ()


_SCOPE = re.compile(r"[\w.:/-]{1,100}", re.ASCII)
_DYNAMIC: dict[str, tuple[Limit, ...]] = {}
_DYNAMIC_KEPT = 256


def _dynamic_limits(text: object) -> tuple[Limit, ...]:
    """A callable's limit string, parsed once (a bounded cache of distinct strings)."""
    if not isinstance(text, str):
        raise TypeError(f"a limit function must return a limit string, not {type(text).__name__}")
    found = _DYNAMIC.get(text)
    if found is None:
        found = parse_limits(text)
        if len(_DYNAMIC) >= _DYNAMIC_KEPT:
            _DYNAMIC.clear()
        _DYNAMIC[text] = found
    return found


def _check_scope(scope: object) -> str | None:
    if scope is None:
        return None
    if not isinstance(scope, str) or _SCOPE.fullmatch(scope) is None:
        raise ValueError(
            f"a shared limit's scope must be 1 to 100 letters, digits or '_.:/-' (got {scope!r})"
        )
    return scope


def _check_condition(what: str, value: object) -> Condition | None:
    if value is not None and not callable(value):
        raise TypeError(f"{what} must be a callable taking the request, not {value!r}")
    return value


def make_rule(
    limits: str | LimitFunction | None = None,
    *,
    key: KeySpec | None = None,
    exempt: bool = False,
    scope: str | None = None,
    exempt_when: Condition | None = None,
    cost: int | CostFunction = 1,
) -> RouteRule:
    if not isinstance(exempt, bool):
        raise TypeError("exempt must be a bool")
    dynamic = limits if callable(limits) else None
    return RouteRule(
        limits=None if limits is None or dynamic is not None else parse_limits(limits),
        key=None if key is None else check_key(key),
        exempt=exempt,
        limits_of=dynamic,
        scope=_check_scope(scope),
        exempt_when=_check_condition("exempt_when", exempt_when),
        cost=cost if callable(cost) else check_cost(cost),
    )


F = TypeVar("F", bound=Callable[..., Any])


def guard_rule(
    limits: str | LimitFunction | None = None,
    *,
    key: KeySpec | None = None,
    exempt: bool = False,
    scope: str | None = None,
    exempt_when: Condition | None = None,
    cost: int | CostFunction = 1,
) -> Callable[[F], F]:
    """Attach a rule to a view (FastAPI/Starlette endpoint, Flask view, Django view):

        @app.get("/login")
        @guard_rule("5/minute;20/hour", key="ip")
        async def login(): ...

    The decorator goes below the framework's route decorator, so the framework registers
    the marked function.
    """
    rule = make_rule(
        limits, key=key, exempt=exempt, scope=scope, exempt_when=exempt_when, cost=cost
    )

    def mark(view: F) -> F:
        global _views_marked
        setattr(view, RULE_ATTRIBUTE, rule)
        _views_marked = True
        return view

    return mark


_views_marked = False


def views_marked() -> bool:
    """Whether any view has been given a rule (`guard_rule`, `rate_limit`, ...) in this
    process: until one has, an adapter without `rules` need not find a request's route."""
    return _views_marked


def rate_limit(
    limits: str | LimitFunction,
    *,
    key: KeySpec | None = None,
    exempt_when: Condition | None = None,
    cost: int | CostFunction = 1,
) -> Callable[[F], F]:
    """`guard_rule(limits, key=key)`: this route's own limits."""
    return guard_rule(limits, key=key, exempt_when=exempt_when, cost=cost)


def shared_limit(
    limits: str | LimitFunction,
    scope: str,
    *,
    key: KeySpec | None = None,
    exempt_when: Condition | None = None,
    cost: int | CostFunction = 1,
) -> Callable[[F], F]:
    """Limits that every view marked with the same `scope` shares: one window per client
    for all of them (`@shared_limit("100/hour", scope="search")` on several views)."""
    return guard_rule(limits, key=key, scope=scope, exempt_when=exempt_when, cost=cost)


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


def limit_state(
    limit: Limit, *, remaining: int, reset_after: float, allowed: bool, name: str | None = None
) -> LimitState:
    return built(
        LimitState,
        policy=limit.text,
        name=name or limit.name,
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
            f'"{s.name}";q={s.limit};w={s.window}' for s in states
        )
        headers["RateLimit"] = f'"{shown.name}";r={shown.remaining};t={shown.reset}'
    if x_headers:
        headers["X-RateLimit-Limit"] = str(shown.limit)
        headers["X-RateLimit-Remaining"] = str(shown.remaining)
        headers["X-RateLimit-Reset"] = str(shown.reset)
    return headers
