"""ASGI middleware for Starlette and FastAPI, over the async face's request check.

    app.add_middleware(GuardMiddleware, config=SecurityConfig(redis_url=...))
    # or, wrapping the application: app = GuardMiddleware(app, config=..., rules={...})

The guard starts on the application's lifespan start-up and closes on its shutdown (and
starts on the first request when the server runs no lifespan). Every request's state holds
it (`request.state.guard` in Starlette and FastAPI, and `request.state.guard_decision`).
Route templates and rules come from the Starlette router, found through the scope's `app`
or, when the middleware wraps the application, through the wrapped application; a route of
a mounted application gets its full template (`/api/users/{name}`).

Blocked HTTP requests get a JSON response (`{"detail": ...}`) with status 403 or 429, or
what `on_block(decision)` returns (an ASGI application such as a Starlette `Response`;
None for the default; it may be a coroutine function); blocked WebSocket connections are
closed with code 1008 before they are accepted (WebSocket messages are not scanned).
Allowed responses get the security and rate-limit headers the application did not set.

The start of the body (`CheckSettings.body_max_bytes`) is read for the check and replayed
to the application, `more_body` chunks and a following `http.disconnect` included; the
rest is not read before the application reads it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import replace
from typing import Any

from guard_core._shared.policy.check_settings import CheckSettings
from guard_core._shared.policy.client_address import lower_headers
from guard_core._shared.policy.rate_limit_rules import rule_of, views_marked
from guard_core._shared.policy.request_body import wants_body
from guard_core._shared.policy.request_model import Decision, RequestInfo, built
from guard_core.guard import Guard
from guard_core.models import SecurityConfig
from guard_core.request_check import RequestCheck

from ._common import await_on_block, check_on_block, logger, wants_user, warn_once

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


#: ASGI `http_version` values of HTTP/1.x (a missing one means 1.1).
_HTTP1 = ("1.0", "1.1")


class GuardMiddleware:
    """Checks every HTTP request and WebSocket connection before the application sees it.

    Give a `config` (a `Guard` is built from it) or a ready `guard`; give `settings` or
    `CheckSettings` fields as keywords (`passive=True`, `default_limits="100/minute"`,
    `rules={...}`, ...); `on_block(decision)` may return the response of a block.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        config: SecurityConfig | None = None,
        guard: Guard | None = None,
        settings: CheckSettings | None = None,
        on_block: Callable[[Decision], Any] | None = None,
        **fields: Any,
    ) -> None:
        if guard is not None and config is not None:
            raise TypeError("give either config or guard, not both")
        if settings is not None and fields:
            raise TypeError("give either settings or CheckSettings fields, not both")
        self.app = app
        self.guard = guard if guard is not None else Guard(config or SecurityConfig())
        self.request_check = RequestCheck(self.guard, settings or CheckSettings(**fields))
        self.on_block = check_on_block(on_block)
        self._started = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if not self._started:
            self._started = True
            await self.guard.start()
        settings = self.request_check.settings
        info = request_info(scope, app=self.app, routes=bool(settings.rules) or views_marked())
        if wants_user(settings, info.rule) and "user" not in scope:
            warn_once(
                "asgi-user",
                "key='user', but no authentication middleware ran before GuardMiddleware "
                "(the scope has no 'user'): limits are keyed by the client address. Put "
                "Starlette's AuthenticationMiddleware outside GuardMiddleware (add_middleware "
                "it after GuardMiddleware, or list it first in middleware=[...]).",
            )
        if kind == "http" and wants_body(
            info.headers,
            settings.body_max_bytes,
            enabled=settings.detect_patterns,
            http1=scope.get("http_version", "1.1") in _HTTP1,
        ):
            body, receive = await buffer_body(receive, settings.body_max_bytes)
            info = replace(info, body=body)
        decision = await self.request_check.check(info)
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        if isinstance(state, MutableMapping):
            state["guard"] = self.guard
            state["guard_decision"] = decision
        if kind == "websocket":
            if decision.allowed:
                await self.app(scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": 1008, "reason": decision.reason})
            return
        if not decision.allowed:
            custom = await await_on_block(self.on_block, decision)
            if custom is not None and callable(custom):
                await custom(scope, receive, _adding_headers(send, decision.headers))
                return
            if custom is not None:
                logger.warning("on_block returned %s, not an ASGI response", type(custom).__name__)
            await _send_block(send, decision)
            return
        await self.app(scope, receive, _adding_headers(send, decision.headers))

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def receive_starting_guard() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.guard.start()
                self._started = True
                state = scope.get("state")
                if isinstance(state, MutableMapping):
                    state["guard"] = self.guard
            return message

        async def send_closing_guard(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await self.guard.close()
                self._started = False
            await send(message)

        await self.app(scope, receive_starting_guard, send_closing_guard)


async def buffer_body(receive: Receive, limit: int) -> tuple[bytes, Receive]:
    """The first `limit` bytes of the body (fewer when it ends first), and a `receive`
    that gives the application every message read, then the server's next ones."""
    messages: list[Message] = []
    size = 0
    while size < limit:
        message = await receive()
        messages.append(message)
        if message.get("type") != "http.request":
            break  # http.disconnect: replayed too
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(m.get("body", b"") for m in messages if m.get("type") == "http.request")

    async def replay() -> Message:
        if messages:
            return messages.pop(0)
        return await receive()

    return body[:limit], replay


def request_info(
    scope: Scope, *, app: Any = None, body: bytes = b"", routes: bool = True
) -> RequestInfo:
    """The request check's view of an ASGI scope (route template and rule from Starlette's
    router: the scope's `app`, else `app`, the application the middleware wraps; not looked
    for when `routes` is false: no rule can then apply, and a block is logged by path)."""
    client = scope.get("client")
    peer = str(client[0]) if client else None
    raw_headers = scope.get("headers") or ()
    headers = lower_headers(
        (name.decode("latin-1"), value.decode("latin-1")) for name, value in raw_headers
    )
    content_types = [value for name, value in raw_headers if name.lower() == b"content-type"]
    if content_types:  # Starlette parses the body by the first one, not the joined values
        headers["content-type"] = content_types[0].decode("latin-1")
    route, endpoint = match_route(scope, app) if routes else (None, None)
    query = scope.get("query_string", b"")
    return built(
        RequestInfo,
        peer=peer,
        method=str(scope.get("method", "GET")),
        path=str(scope.get("path", "/")),
        query=query.decode("latin-1") if isinstance(query, bytes) else str(query),
        headers=headers,
        route=route,
        rule=rule_of(endpoint) if endpoint is not None else None,
        user=_user_of(scope),
        body=body,
    )


def routes_of(app: Any) -> Any:
    """The routes of a Starlette application, router or Mount's application, looked for
    through the `.app` of the middleware wrapping it; None when there are none."""
    for _ in range(32):
        if app is None:
            return None
        router = getattr(app, "router", None)
        routes = getattr(router, "routes", None)
        if router is None and hasattr(app, "url_path_for"):  # a Router itself
            routes = getattr(app, "routes", None)
        if routes:
            return routes
        app = getattr(app, "app", None)
    return None


def match_route(scope: Scope, app: Any = None) -> tuple[str | None, Any]:
    """(route template, endpoint) of the Starlette route the request will reach, or
    (None, None) when none does or the application is not a Starlette one."""
    routes = routes_of(scope.get("app")) or routes_of(app)
    if not routes:
        return None, None
    try:
        from starlette.routing import Match
    except ImportError:  # pragma: no cover - a router without Starlette
        return None, None
    return _search(routes, scope, "", Match)


def _search(routes: Any, scope: Scope, prefix: str, match_kind: Any) -> tuple[str | None, Any]:
    partial: tuple[str | None, Any] = (None, None)
    for route in routes:
        try:
            match, child = route.matches(scope)
        except Exception:  # a route that cannot judge this scope is not the one
            continue
        if match is match_kind.NONE:
            continue
        template = prefix + str(getattr(route, "path", ""))
        if not hasattr(route, "endpoint") and hasattr(route, "app"):  # a Mount (or Host)
            inner = getattr(route, "routes", None) or routes_of(route.app)
            if inner:
                found = _search(inner, {**scope, **child}, template, match_kind)
                if found[0] is not None:
                    return found
            return template + "/{path}", None
        if match is match_kind.FULL:
            return template, getattr(route, "endpoint", None)
        if partial[0] is None:
            partial = (template, getattr(route, "endpoint", None))
    return partial


def _user_of(scope: Scope) -> str | None:
    user = scope.get("user")
    try:
        if user is None or not getattr(user, "is_authenticated", False):
            return None
        identity = getattr(user, "identity", None)
    except Exception:  # Starlette's BaseUser.identity raises NotImplementedError
        identity = None
    if not identity:
        try:
            identity = getattr(user, "display_name", None)
        except Exception:
            identity = None
    return str(identity) if identity else None


#: Header names as sent (lower case, bytes): the same dozen names on every response.
_NAMES: dict[str, bytes] = {}


def _encoded(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    names = _NAMES
    encoded = []
    for name, value in headers.items():
        raw = names.get(name)
        if raw is None:
            raw = name.lower().encode("latin-1")
            if len(names) < 256:
                names[name] = raw
        encoded.append((raw, value.encode("latin-1")))
    return encoded


async def _send_block(send: Send, decision: Decision) -> None:
    body = json.dumps(decision.body()).encode()
    headers = {
        **decision.headers,
        "content-type": "application/json",
        "content-length": str(len(body)),
    }
    await send(
        {"type": "http.response.start", "status": decision.status, "headers": _encoded(headers)}
    )
    await send({"type": "http.response.body", "body": body})


def _adding_headers(send: Send, headers: dict[str, str]) -> Send:
    extra = _encoded(headers)

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start" and extra:
            present = {name.lower() for name, _ in message.get("headers", ())}
            added = [(name, value) for name, value in extra if name not in present]
            message = {**message, "headers": [*message.get("headers", ()), *added]}
        await send(message)

    return send_with_headers
