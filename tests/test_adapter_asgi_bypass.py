"""The ASGI middleware against the ways around it (issue 20): bodies, the wrapping form,
mounted applications, forwarding chains, user keys; and its on_block hook."""

from __future__ import annotations

import hashlib
import logging
import uuid
import warnings
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

with warnings.catch_warnings():  # Starlette's notice about its test client's HTTP library
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from guard_core import rate_limit
from guard_core.adapters._common import _warned
from guard_core.adapters.asgi import GuardMiddleware, Message, buffer_body, request_info
from guard_core.guard import Guard
from guard_core.models import SecurityConfig
from guard_core.testing import LocalRedisServer

CLIENT = ("203.0.113.21", 40000)
SCRIPT_FORM = {"comment": "<script>alert(1)</script>"}
SQLI_JSON = {"user": "' OR '1'='1"}


def config(redis_server: LocalRedisServer) -> SecurityConfig:
    return SecurityConfig(redis_url=redis_server.url, redis_prefix=f"b{uuid.uuid4().hex[:8]}:")


def api() -> FastAPI:
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, Any]:
        body = await request.body()
        return {"sha256": hashlib.sha256(body).hexdigest(), "size": len(body)}

    @app.get("/limited")
    async def limited() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/login")
    @rate_limit("2/minute")
    async def login() -> dict[str, str]:
        return {"login": "form"}

    @app.get("/state")
    async def state(request: Request) -> dict[str, bool]:
        return {"guard": isinstance(getattr(request.state, "guard", None), Guard)}

    return app


def added(redis_server: LocalRedisServer, **settings: Any) -> FastAPI:
    app = api()
    app.add_middleware(GuardMiddleware, config=config(redis_server), **settings)  # type: ignore[arg-type]
    return app


def wrapped(redis_server: LocalRedisServer, **settings: Any) -> GuardMiddleware:
    return GuardMiddleware(api(), config=config(redis_server), **settings)


@pytest.fixture(params=["add_middleware", "wrapping"])
def form(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def build(form: str, redis_server: LocalRedisServer, **settings: Any) -> Any:
    return (added if form == "add_middleware" else wrapped)(redis_server, **settings)


def test_every_readme_form_honours_rules(form: str, redis_server: LocalRedisServer) -> None:
    app = build(form, redis_server, rules={"/limited": "2/minute"})
    with TestClient(app, client=CLIENT) as client:
        codes = [client.get("/limited").status_code for _ in range(5)]
        login = [client.get("/login").status_code for _ in range(3)]
        assert client.get("/state").json() == {"guard": True}
    assert codes == [200, 200, 429, 429, 429]
    assert login == [200, 200, 429]


def test_form_and_json_bodies_are_scanned(form: str, redis_server: LocalRedisServer) -> None:
    with TestClient(build(form, redis_server), client=CLIENT) as client:
        assert client.post("/echo", data=SCRIPT_FORM).status_code == 403
        assert client.post("/echo", json=SQLI_JSON).status_code == 403
        files = {"upload": ("page.html", b"<script>alert(1)</script>", "text/html")}
        assert client.post("/echo", files=files, data={"title": "fine"}).status_code == 200
        text_field = client.post("/echo", files=files, data={"title": "<script>x</script>"})
        assert text_field.status_code == 403
        harmless = client.post("/echo", data={"comment": "hello"})
    assert harmless.status_code == 200
    assert harmless.json()["sha256"] == hashlib.sha256(b"comment=hello").hexdigest()


def test_a_large_body_reaches_the_app_intact(redis_server: LocalRedisServer) -> None:
    binary = b"<script>" + bytes(range(256)) * 8192  # 2 MiB; the payload is past the bound
    text = b"harmless text\n" * 100 + SCRIPT_FORM["comment"].encode() * 50_000
    form_body = b"comment=" + b"x" * 4096 + b"&more=" + b"<script>" * 100_000
    with TestClient(added(redis_server, body_max_bytes=1024), client=CLIENT) as client:
        for kind, body in (
            ("application/octet-stream", binary[8:]),  # read (binary: not scanned), replayed
            ("text/plain", text),  # scanned up to the bound, then replayed and streamed on
            ("application/x-www-form-urlencoded", form_body),
        ):
            response = client.post("/echo", content=body, headers={"content-type": kind})
            digest = {"sha256": hashlib.sha256(body).hexdigest(), "size": len(body)}
            assert (kind, response.status_code, response.json()) == (kind, 200, digest)
        caught = client.post("/echo", content=b"<script>" + text, headers={"content-type": "x/y"})
    assert caught.status_code == 403  # the start of any text body is scanned


def test_bodies_the_guard_once_took_as_unscanned(redis_server: LocalRedisServer) -> None:
    form_type = "application/x-www-form-urlencoded"
    script = f"comment={SCRIPT_FORM['comment']}".encode()
    with TestClient(added(redis_server), client=CLIENT) as client:
        # Starlette never decompresses a request body: the bytes as sent are what it parses
        gzip = {"content-type": form_type, "content-encoding": "gzip"}
        assert client.post("/echo", content=script, headers=gzip).status_code == 403
        # a charset Python cannot decode with: scanned as UTF-8, never a 500
        for charset in ("idna", "undefined", "punycode"):
            kind = {"content-type": f"{form_type}; charset={charset}"}
            assert client.post("/echo", content=script, headers=kind).status_code == 403
        # Starlette parses by the first of two Content-Types, the scope joins them
        twice = [("content-type", form_type), ("content-type", "text/x")]
        assert client.post("/echo", content=script, headers=twice).status_code == 403
        escaped = b'{"q": "\\u003cscript\\u003ealert(1)"}'
        unknown = {"content-type": "application/octet-stream"}  # Flask's get_json(force=True)
        assert client.post("/echo", content=escaped, headers=unknown).status_code == 403
        harmless = [("content-type", "text/x"), ("content-type", form_type)]
        assert client.post("/echo", content=b"a=1", headers=harmless).status_code == 200


def test_the_first_content_type_is_the_one_checked() -> None:
    scope = {
        "type": "http",
        "headers": [
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"Content-Type", b"text/x"),
            (b"x-other", b"1"),
            (b"x-other", b"2"),
        ],
    }
    headers = request_info(scope).headers
    assert headers["content-type"] == "application/x-www-form-urlencoded"
    assert headers["x-other"] == "1, 2"


@pytest.mark.anyio
@pytest.mark.parametrize(("version", "read_by_guard"), [("1.1", False), ("2", True)])
async def test_a_request_without_a_body_is_not_read_over_http1(
    version: str, read_by_guard: bool
) -> None:
    calls: list[str] = []
    first: Message = {"type": "http.request", "body": b"", "more_body": False}

    async def receive() -> Message:
        calls.append("receive")
        return first

    async def app(scope: Any, receive: Any, send: Any) -> None:
        calls.append("app")
        assert await receive() == first  # whoever read it first, the app gets the message
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    guard = GuardMiddleware(app, config=SecurityConfig(enable_redis=False))
    scope = {
        "type": "http",
        "http_version": version,
        "method": "GET",
        "path": "/",
        "query_string": b"",
        "headers": [],
        "client": ("203.0.113.9", 1234),
    }
    try:
        await guard(scope, receive, send)
    finally:
        await guard.guard.close()
    assert calls == (["receive", "app"] if read_by_guard else ["app", "receive"])
    assert sent[0]["status"] == 200


@pytest.mark.anyio
async def test_buffered_messages_are_replayed_in_order() -> None:
    sent: list[Message] = [
        {"type": "http.request", "body": b"a=1&", "more_body": True},
        {"type": "http.request", "body": b"b=2&", "more_body": True},
        {"type": "http.request", "body": b"c=3", "more_body": False},
        {"type": "http.disconnect"},
    ]
    queue = list(sent)

    async def receive() -> Message:
        return queue.pop(0)

    body, replay = await buffer_body(receive, 6)
    assert body == b"a=1&b="
    assert len(queue) == 2  # the bound reached: the rest is left to the application
    assert [await replay() for _ in range(4)] == sent
    queue[:] = [
        {"type": "http.request", "body": b"x", "more_body": True},
        {"type": "http.disconnect"},
    ]
    body, replay = await buffer_body(receive, 100)
    assert body == b"x" and queue == []
    assert (await replay())["body"] == b"x" and (await replay())["type"] == "http.disconnect"


def test_mounted_applications_get_their_full_template(redis_server: LocalRedisServer) -> None:
    async def item(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.path_params["item_id"])

    @rate_limit("1/minute")
    async def marked(request: Request) -> PlainTextResponse:
        return PlainTextResponse("marked")

    inner = Starlette(routes=[Route("/items/{item_id}", item), Route("/marked", marked)])
    wrapped_inner = Starlette(routes=[Route("/items/{item_id}", item)])
    app = Starlette(
        routes=[
            Mount("/v1", app=inner),
            Mount("/v2", app=GZipMiddleware(wrapped_inner)),
        ]
    )
    app.add_middleware(
        GuardMiddleware,  # type: ignore[arg-type]
        config=config(redis_server),
        default_limits="",
        rules={"/v1/items/{item_id}": "2/minute", "/v2/items/{item_id}": "1/minute"},
    )
    with TestClient(app, client=CLIENT) as client:
        assert [client.get(f"/v1/items/{n}").status_code for n in (1, 2, 3)] == [200, 200, 429]
        assert [client.get("/v1/marked").status_code for _ in range(2)] == [200, 429]
        assert [client.get(f"/v2/items/{n}").status_code for n in (1, 2)] == [200, 429]


def test_a_banned_client_behind_a_proxy_cannot_pad_the_chain(
    form: str, redis_server: LocalRedisServer
) -> None:
    app = build(form, redis_server, trusted_proxies=["127.0.0.1"])
    banned = "198.51.100.61"
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        guard = app.guard if isinstance(app, GuardMiddleware) else None
        guard = guard or _guard_of(client)
        assert client.portal is not None
        client.portal.call(guard.ip_bans.ban_ip, banned, 60)
        for chain, reason in (
            (banned, "IP banned"),
            (", ".join(["192.0.2.1"] * 30 + [banned]), "IP banned"),  # padded, under the bound
            (", ".join(["192.0.2.1"] * 999 + [banned]), "forwarding chain too long"),
            ("192.0.2.1 " * 900 + ", " + banned, "forwarding chain too long"),
        ):
            response = client.get("/limited", headers={"x-forwarded-for": chain})
            assert (response.status_code, response.json()) == (403, {"detail": reason})
        padded = ", ".join(["192.0.2.1"] * 30 + ["192.0.2.9"])
        assert client.get("/limited", headers={"x-forwarded-for": padded}).status_code == 200
        forged = {"forwarded": "for=192.0.2.1", "x-forwarded-for": banned}
        assert client.get("/limited", headers=forged).status_code == 403
        assert client.get("/limited", headers={"x-forwarded-for": "192.0.2.1"}).status_code == 200


def _guard_of(client: TestClient) -> Guard:
    response = client.get("/state")
    assert response.json() == {"guard": True}
    app = client.app
    stack = app.middleware_stack  # type: ignore[attr-defined]
    while not isinstance(stack, GuardMiddleware):
        stack = stack.app
    return stack.guard


class HeaderUser(AuthenticationBackend):
    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser] | None:
        name = conn.headers.get("x-user")
        return (AuthCredentials(["authenticated"]), SimpleUser(name)) if name else None


def test_user_keys(redis_server: LocalRedisServer, caplog: pytest.LogCaptureFixture) -> None:
    app = api()
    app.add_middleware(
        GuardMiddleware,  # type: ignore[arg-type]
        config=config(redis_server),
        key="user",
        default_limits="2/minute",
    )
    app.add_middleware(AuthenticationMiddleware, backend=HeaderUser())  # outside: runs first
    with TestClient(app, client=CLIENT) as client:
        ann = [client.get("/limited", headers={"x-user": "ann"}).status_code for _ in range(3)]
        bob = client.get("/limited", headers={"x-user": "bob"}).status_code
    assert (ann, bob) == ([200, 200, 429], 200)

    inside = api()
    inside.add_middleware(AuthenticationMiddleware, backend=HeaderUser())  # inside: too late
    inside.add_middleware(
        GuardMiddleware,  # type: ignore[arg-type]
        config=config(redis_server),
        key="user",
        default_limits="2/minute",
    )
    _warned.discard("asgi-user")
    with TestClient(inside, client=CLIENT) as client, caplog.at_level(logging.WARNING):
        codes = [client.get("/limited", headers={"x-user": u}).status_code for u in "abcd"]
    assert codes == [200, 200, 429, 429]  # keyed by the address
    warned = [
        r
        for r in caplog.records
        if r.name == "guard_core.checks" and "AuthenticationMiddleware" in r.getMessage()
    ]
    assert len(warned) == 1  # once per process


def test_on_block_gives_the_response(form: str, redis_server: LocalRedisServer) -> None:
    seen: list[str] = []

    def on_block(decision: Any) -> Any:
        seen.append(decision.verdict)
        if decision.verdict == "rate_limited":
            return PlainTextResponse("slow down", status_code=429)
        if decision.verdict == "attack_pattern":
            raise RuntimeError("a broken hook")
        return None

    app = build(form, redis_server, on_block=on_block)
    with TestClient(app, client=CLIENT) as client:
        limited = [client.get("/login") for _ in range(3)][-1]
        attack = client.get("/limited?q=<script>")
    assert (limited.status_code, limited.text) == (429, "slow down")
    assert limited.headers["retry-after"].isdigit()
    assert limited.headers["x-frame-options"] == "DENY"
    assert (attack.status_code, attack.json()) == (403, {"detail": "suspicious request"})
    assert seen == ["rate_limited", "attack_pattern"]
    with pytest.raises(TypeError, match="on_block"):
        GuardMiddleware(api(), config=config(redis_server), on_block="nope")  # type: ignore[arg-type]
