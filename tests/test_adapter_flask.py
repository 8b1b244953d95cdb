"""The Flask extension with Flask's test client, on a real redis-server."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from guard_core._shared.policy.rate_limit_rules import exempt, guard_rule
from guard_core.adapters.flask import FlaskGuard
from guard_core.models import SecurityConfig
from guard_core.testing import LocalRedisServer

CLIENT = "203.0.113.30"


def build_app(extension: FlaskGuard) -> Flask:
    app = Flask(__name__)
    extension.init_app(app)

    @app.get("/")
    def index() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/login")
    @guard_rule("2/minute")
    def login() -> dict[str, str]:
        return {"login": "form"}

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, int]:
        return {"item": item_id}

    @app.get("/framed")
    def framed() -> tuple[dict[str, str], dict[str, str]]:
        return {"ok": "yes"}, {"x-frame-options": "SAMEORIGIN"}

    @app.get("/health")
    @exempt
    def health() -> dict[str, str]:
        return {"status": "up"}

    return app


@pytest.fixture
def make_client(
    redis_server: LocalRedisServer,
) -> Iterator[Callable[..., tuple[FlaskClient, FlaskGuard]]]:
    made: list[FlaskGuard] = []

    def make(peer: str = CLIENT, **settings: Any) -> tuple[FlaskClient, FlaskGuard]:
        config = SecurityConfig(redis_url=redis_server.url, redis_prefix=f"f{uuid.uuid4().hex}:")
        extension = FlaskGuard(config=config, **settings)
        made.append(extension)
        client = build_app(extension).test_client()
        client.environ_base["REMOTE_ADDR"] = peer
        return client, extension

    yield make
    for extension in made:
        extension.close()


def test_a_header_the_view_set_is_kept_and_the_others_added_once(make_client: Any) -> None:
    client, _ = make_client()
    response = client.get("/framed")
    assert response.headers.getlist("X-Frame-Options") == ["SAMEORIGIN"]
    assert response.headers.getlist("X-Content-Type-Options") == ["nosniff"]
    assert len(response.headers.getlist("RateLimit")) == 1


def test_allowed_response_carries_headers(make_client: Any) -> None:
    client, _ = make_client()
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["RateLimit-Policy"].startswith('"100-per-60s";q=100')
    assert response.headers["X-RateLimit-Remaining"] == "99"


def test_a_client_on_the_shared_allow_list_is_served_though_banned(make_client: Any) -> None:
    client, extension = make_client()
    extension.guard.ip_bans.ban_ip(CLIENT, 60)
    assert client.get("/").status_code == 403
    extension.guard.allow_list.allow(CLIENT)
    response = client.get("/?q=<script>alert(1)</script>")  # not even scanned
    assert response.status_code == 200
    assert "RateLimit-Policy" not in response.headers  # exempt: no limit counted
    extension.guard.allow_list.remove(CLIENT)
    assert client.get("/").status_code == 403


def test_banned_client_gets_403(make_client: Any) -> None:
    client, extension = make_client()
    assert client.get("/").status_code == 200
    extension.guard.ip_bans.ban_ip(CLIENT, 60)
    response = client.get("/")
    assert response.status_code == 403
    assert response.get_json() == {"detail": "IP banned"}
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_rate_limit_gives_429_with_retry_after(make_client: Any) -> None:
    client, _ = make_client()
    assert [client.get("/login").status_code for _ in range(2)] == [200, 200]
    response = client.get("/login")
    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 60


def test_route_template_keys_path_parameters_together(make_client: Any) -> None:
    client, _ = make_client(default_limits="", rules={"/items/<int:item_id>": "2/minute"})
    assert [client.get(f"/items/{n}").status_code for n in (1, 2, 3)] == [200, 200, 429]


@pytest.mark.parametrize(
    "query", ["q=%3Cscript%3Ealert(1)%3C/script%3E", "id=1%27%20OR%20%271%27%3D%271"]
)
def test_encoded_payload_is_blocked(make_client: Any, query: str) -> None:
    client, _ = make_client()
    assert client.get(f"/?{query}").status_code == 403


def test_exempt_path_and_view(make_client: Any) -> None:
    client, extension = make_client(exempt_paths=("/items",))
    extension.guard.ip_bans.ban_ip(CLIENT, 60)
    assert client.get("/health").status_code == 200
    assert client.get("/items/4").status_code == 200
    assert client.get("/").status_code == 403


def test_passive_mode_never_blocks(make_client: Any, caplog: pytest.LogCaptureFixture) -> None:
    client, _ = make_client(passive=True)
    with caplog.at_level(logging.INFO, logger="guard_core.decision"):
        assert client.get("/?q=<script>").status_code == 200
        assert [client.get("/login").status_code for _ in range(3)] == [200, 200, 200]
    messages = [r.getMessage() for r in caplog.records if r.name == "guard_core.decision"]
    assert any("verdict=attack_pattern action=logged" in m for m in messages)
    assert any("verdict=rate_limited action=logged" in m for m in messages)


def test_not_an_ip_peer_is_not_an_error(make_client: Any) -> None:
    client, _ = make_client(peer="unix:/run/app.sock", default_limits="1/minute")
    assert [client.get("/").status_code for _ in range(3)] == [200, 200, 200]
    assert client.get("/?q=%3Cscript%3E").status_code == 403


def test_one_guard_per_process_closed_and_made_again(make_client: Any) -> None:
    client, extension = make_client()
    first = extension.guard
    assert extension.guard is first
    extension.close()
    assert client.get("/").status_code == 200
    assert extension.guard is not first
    assert extension.guard.health().status == "redis"
