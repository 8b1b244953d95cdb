"""The ASGI middleware with Starlette's and FastAPI's test clients, on a real redis-server."""

from __future__ import annotations

import logging
import uuid
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI, WebSocket
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

with warnings.catch_warnings():  # Starlette's notice about its test client's HTTP library
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from guard_core._shared.policy.rate_limit_rules import exempt, guard_rule
from guard_core.adapters.asgi import GuardMiddleware, match_route
from guard_core.guard import Guard
from guard_core.models import SecurityConfig
from guard_core.testing import LocalRedisServer

CLIENT = ("203.0.113.20", 40000)


def config(redis_server: LocalRedisServer) -> SecurityConfig:
    return SecurityConfig(redis_url=redis_server.url, redis_prefix=f"t{uuid.uuid4().hex[:8]}:")


def fastapi_app(guard: Guard, **settings: Any) -> FastAPI:
    app = FastAPI()
    # Starlette's middleware protocol is stricter than ASGI's types
    app.add_middleware(GuardMiddleware, guard=guard, **settings)  # type: ignore[arg-type]

    @app.get("/")
    async def index() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/login")
    @guard_rule("2/minute")
    async def login() -> dict[str, str]:
        return {"login": "form"}

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item": item_id}

    @app.get("/health")
    @exempt
    async def health() -> dict[str, str]:
        return {"status": "up"}

    @app.get("/whoami")
    async def whoami(request: Request) -> dict[str, bool]:
        return {"guard_in_state": isinstance(getattr(request.state, "guard", None), Guard)}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hello")
        await websocket.close()

    return app


@pytest.fixture
def make_client(redis_server: LocalRedisServer) -> Callable[..., tuple[TestClient, Guard]]:
    def make(client: tuple[str, int] = CLIENT, **settings: Any) -> tuple[TestClient, Guard]:
        guard = Guard(config(redis_server))
        return TestClient(fastapi_app(guard, **settings), client=client), guard

    return make


def test_allowed_response_carries_security_and_ratelimit_headers(make_client: Any) -> None:
    client, _ = make_client()
    with client:
        response = client.get("/")
    assert response.status_code == 200
    assert response.headers["x-frame-options"] == "DENY"
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["ratelimit-policy"].startswith('"100-per-60s";q=100')
    assert response.headers["x-ratelimit-remaining"] == "99"


def test_a_client_on_the_shared_allow_list_is_served_though_banned(make_client: Any) -> None:
    client, guard = make_client()
    with client:
        client.portal.call(guard.ip_bans.ban_ip, CLIENT[0], 60)
        assert client.get("/").status_code == 403
        client.portal.call(guard.allow_list.allow, CLIENT[0])
        response = client.get("/?q=<script>alert(1)</script>")  # not even scanned
        assert response.status_code == 200
        assert "ratelimit-policy" not in response.headers  # exempt: no limit counted
        client.portal.call(guard.allow_list.remove, CLIENT[0])
        assert client.get("/").status_code == 403


def test_banned_client_gets_403(make_client: Any) -> None:
    client, guard = make_client()
    with client:
        assert client.get("/").status_code == 200
        client.portal.call(guard.ip_bans.ban_ip, CLIENT[0], 60)
        response = client.get("/")
    assert response.status_code == 403
    assert response.json() == {"detail": "IP banned"}
    assert response.headers["x-content-type-options"] == "nosniff"


def test_rate_limit_gives_429_with_retry_after(make_client: Any) -> None:
    client, _ = make_client()
    with client:
        assert [client.get("/login").status_code for _ in range(2)] == [200, 200]
        response = client.get("/login")
    assert response.status_code == 429
    assert response.headers["retry-after"].isdigit()
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert response.headers["ratelimit"].startswith('"2-per-60s";r=0;')


def test_route_template_keys_path_parameters_together(make_client: Any) -> None:
    client, _ = make_client(default_limits="", rules={"/items/{item_id}": "2/minute"})
    with client:
        codes = [client.get(f"/items/{n}").status_code for n in (1, 2, 3)]
    assert codes == [200, 200, 429]


@pytest.mark.parametrize(
    "query", ["q=%3Cscript%3Ealert(1)%3C/script%3E", "id=1%27%20OR%20%271%27%3D%271"]
)
def test_encoded_payload_is_blocked(make_client: Any, query: str) -> None:
    client, _ = make_client()
    with client:
        assert client.get(f"/?{query}").status_code == 403


def test_exempt_path_and_view(make_client: Any) -> None:
    client, guard = make_client(exempt_paths=("/items",))
    with client:
        client.portal.call(guard.ip_bans.ban_ip, CLIENT[0], 60)
        assert client.get("/health").status_code == 200
        assert client.get("/items/5").status_code == 200
        assert client.get("/").status_code == 403


def test_passive_mode_never_blocks(make_client: Any, caplog: pytest.LogCaptureFixture) -> None:
    client, guard = make_client(passive=True)
    with client, caplog.at_level(logging.INFO, logger="guard_core.decision"):
        client.portal.call(guard.ip_bans.ban_ip, CLIENT[0], 60)
        assert client.get("/").status_code == 200
        client.portal.call(guard.ip_bans.unban_ip, CLIENT[0])
        assert client.get("/?q=<script>").status_code == 200
        assert [client.get("/login").status_code for _ in range(3)] == [200, 200, 200]
    messages = [r.getMessage() for r in caplog.records if r.name == "guard_core.decision"]
    assert any("verdict=banned action=logged" in m for m in messages)
    assert any("verdict=attack_pattern action=logged" in m for m in messages)
    assert any("verdict=rate_limited action=logged" in m for m in messages)


def test_testclient_peer_is_not_an_error(make_client: Any) -> None:
    client, _ = make_client(client=("testclient", 50000), default_limits="1/minute")
    with client:
        assert [client.get("/").status_code for _ in range(3)] == [200, 200, 200]
        assert client.get("/?q=%3Cscript%3E").status_code == 403


def test_lifespan_starts_and_closes_the_guard_and_runs_twice(make_client: Any) -> None:
    client, guard = make_client()
    for _ in range(2):  # a second lifespan on a new event loop starts the guard again
        with client:
            assert client.get("/whoami").json() == {"guard_in_state": True}
            health = client.portal.call(guard.health)
            assert health.status == "redis"
            client.portal.call(guard.ip_bans.ban_ip, "198.51.100.1", 60)
        assert guard.redis._closed  # closed by the lifespan's shutdown


def test_requests_on_new_event_loops_keep_sharing_state(
    make_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Without `with`, the test client runs every request on an event loop of its own."""
    client, _ = make_client()
    with caplog.at_level(logging.WARNING):
        codes = [client.get("/login").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    # no "Event loop is closed", no fallback to memory: Redis served all three loops
    assert not [r for r in caplog.records if r.name.startswith("guard_core")]


def test_blocked_websocket_is_closed(make_client: Any) -> None:
    from starlette.websockets import WebSocketDisconnect

    client, guard = make_client()
    with client:
        with client.websocket_connect("/ws") as ws:
            assert ws.receive_text() == "hello"
        client.portal.call(guard.ip_bans.ban_ip, CLIENT[0], 60)
        with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect("/ws"):
            pass
    assert closed.value.code == 1008


def test_plain_starlette_app_with_mount(redis_server: LocalRedisServer) -> None:
    async def user(request: Request) -> JSONResponse:
        return JSONResponse({"user": request.path_params["name"]})

    inner = [Route("/users/{name}", user)]
    app = Starlette(routes=[Mount("/api", routes=inner)])
    app.add_middleware(
        GuardMiddleware,  # type: ignore[arg-type]  # Starlette's protocol is stricter than ASGI
        config=config(redis_server),
        rules={"/api/users/{name}": "1/minute"},
    )
    with TestClient(app, client=CLIENT) as client:
        assert client.get("/api/users/a").status_code == 200
        assert client.get("/api/users/b").status_code == 429
        assert client.get("/nowhere").status_code == 404
    scope = {"type": "http", "path": "/api/users/x", "root_path": "", "method": "GET", "app": app}
    assert match_route(scope)[0] == "/api/users/{name}"


def test_middleware_arguments_are_checked(redis_server: LocalRedisServer) -> None:
    guard = Guard(config(redis_server))
    with pytest.raises(TypeError, match="either config or guard"):
        GuardMiddleware(Starlette(), guard=guard, config=config(redis_server))
    with pytest.raises(ValueError, match="not a limit"):
        GuardMiddleware(Starlette(), guard=guard, default_limits="many")


def test_docs_preset_loosens_the_policy_on_docs_pages_only(make_client: Any) -> None:
    from guard_core._shared.policy.header_presets import fastapi_docs_overrides

    client, guard = make_client()
    with client:
        client.portal.call(lambda: guard.headers.configure(path_overrides=fastapi_docs_overrides()))
        docs = client.get("/docs")
        api = client.get("/")
    assert docs.status_code == 200
    assert "https://cdn.jsdelivr.net" in docs.headers["content-security-policy"]
    assert "swagger-ui-bundle.js" in docs.text
    assert "cdn.jsdelivr.net" not in api.headers["content-security-policy"]
