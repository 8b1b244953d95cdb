"""What an adapter hands the request check, and what it gets back.

Pure dataclasses shared by both faces: `RequestInfo` (a framework-free description of one
request) and `Decision` (allow or block, the response headers, the rate-limit state).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

Verdict = Literal[
    "allowed",
    "exempt",
    "denied",
    "banned",
    "cloud_blocked",
    "user_agent_blocked",
    "attack_pattern",
    "rate_limited",
    "auto_banned",
]


@dataclass(frozen=True)
class RequestInfo:
    """One request as the check sees it.

    `peer` is the address of the socket's other end as the server reports it (an IP address
    as text, or anything else such as `"testclient"` or a Unix socket path, or `None`).
    `headers` has lower-case names. `route` is the route template when the framework knows
    it (`/users/{user_id}`, `/users/<int:user_id>`, `users/<int:pk>/`). `rule` is the
    per-route rule attached to the view (`guard_rule` decorator), if any. `user` is an
    authenticated user's id, for limits keyed by user. `body` is the start of the request
    body as the adapter read it (at most `CheckSettings.body_max_bytes`, empty when the
    content type is not scanned); its type is `headers["content-type"]`.
    """

    peer: str | None
    method: str
    path: str
    query: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    route: str | None = None
    rule: Any = None
    user: str | None = None
    body: bytes = b""


@dataclass(frozen=True)
class LimitState:
    """The state of one rate limit after this request."""

    #: The limit as configured, e.g. "5/minute".
    policy: str
    #: Its name in the RateLimit headers, distinct within one response: "5-per-60s".
    name: str
    limit: int
    window: int
    remaining: int
    #: Seconds until the window admits a request again (whole seconds, rounded up).
    reset: int
    allowed: bool


@dataclass(frozen=True)
class Decision:
    """What to do with a request.

    `allowed` is what the adapter does. `verdict` is what the guard found: in passive mode
    a request may be allowed with a blocking verdict (`enforced` is then False). `status`
    is the status code of a block (403 or 429; 200 when nothing was found). `headers` go on
    the response, blocked or not. `client` is the resolved client address, `None` when the
    peer was not an IP address (`notes` then says which steps were skipped).
    """

    allowed: bool
    verdict: Verdict
    status: int
    reason: str
    headers: dict[str, str]
    client: str | None
    rate_limits: tuple[LimitState, ...] = ()
    enforced: bool = True
    notes: tuple[str, ...] = ()

    @property
    def blocked(self) -> bool:
        return not self.allowed

    def body(self) -> dict[str, str]:
        """A JSON body for a block response (no request data in it)."""
        return {"detail": self.reason}


_T = TypeVar("_T")
_new = object.__new__


def built(cls: type[_T], **fields: Any) -> _T:
    """An instance of one of these frozen dataclasses from every one of its fields, without
    the generated `__init__` (which sets each field through `object.__setattr__`: a third of
    the cost of building one, on the path of every request). The instance is the same, and
    as frozen; a test holds that every field is given where this is used."""
    instance = _new(cls)
    instance.__dict__.update(fields)
    return instance
