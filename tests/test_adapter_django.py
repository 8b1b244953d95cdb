"""The Django middleware and app config with Django's test client, on a real redis-server."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, JsonResponse
from django.test import Client, override_settings
from django.urls import path

from guard_core._shared.policy.rate_limit_rules import exempt, guard_rule
from guard_core.adapters import django as guard_django
from guard_core.models import SecurityConfig
from guard_core.testing import LocalRedisServer
from tests.support import django_settings

CLIENT = "203.0.113.40"

django_settings.configure()


def index(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": "yes"})


@guard_rule("2/minute")
def login(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"login": "form"})


def item(request: HttpRequest, item_id: int) -> JsonResponse:
    return JsonResponse({"item": item_id})


@exempt
def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "up"})


urlpatterns = [
    path("", index),
    path("login", login),
    path("items/<int:item_id>", item),
    path("health", health),
]


@pytest.fixture(autouse=True)
def _this_modules_urls() -> Iterator[None]:
    """This module's views and middleware, whichever module configured Django."""
    with override_settings(ROOT_URLCONF=__name__, MIDDLEWARE=[django_settings.GUARD]):
        yield


@pytest.fixture
def make_client(redis_server: LocalRedisServer) -> Iterator[Callable[..., Client]]:
    overrides: list[Any] = []

    def make(peer: str = CLIENT, **fields: Any) -> Client:
        config = SecurityConfig(redis_url=redis_server.url, redis_prefix=f"d{uuid.uuid4().hex}:")
        override = override_settings(GUARD_CORE={"config": config, **fields})
        override.enable()
        overrides.append(override)
        guard_django.reset_process_guard()
        return Client(REMOTE_ADDR=peer)

    yield make
    guard_django.reset_process_guard()
    for override in overrides:
        override.disable()


def test_allowed_response_carries_headers(make_client: Any) -> None:
    response = make_client().get("/")
    assert response.status_code == 200
    assert response["X-Frame-Options"] == "DENY"
    assert response["RateLimit-Policy"].startswith('"100-per-60s";q=100')


def test_banned_client_gets_403(make_client: Any) -> None:
    client = make_client()
    assert client.get("/").status_code == 200
    guard_django.get_guard().ip_bans.ban_ip(CLIENT, 60)
    response = client.get("/")
    assert response.status_code == 403
    assert response.json() == {"detail": "IP banned"}
    assert response["X-Content-Type-Options"] == "nosniff"


def test_a_client_on_the_shared_allow_list_is_served_though_banned(make_client: Any) -> None:
    client = make_client()
    guard = guard_django.get_guard()
    guard.ip_bans.ban_ip(CLIENT, 60)
    assert client.get("/").status_code == 403
    guard.allow_list.allow(CLIENT)
    response = client.get("/?q=<script>alert(1)</script>")  # not even scanned
    assert response.status_code == 200
    assert not response.has_header("RateLimit-Policy")  # exempt: no limit counted
    guard.allow_list.remove(CLIENT)
    assert client.get("/").status_code == 403


def test_rate_limit_gives_429_with_retry_after(make_client: Any) -> None:
    client = make_client()
    assert [client.get("/login").status_code for _ in range(2)] == [200, 200]
    response = client.get("/login")
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60


def test_route_template_keys_path_parameters_together(make_client: Any) -> None:
    client = make_client(default_limits="", rules={"/items/<int:item_id>": "2/minute"})
    assert [client.get(f"/items/{n}").status_code for n in (1, 2, 3)] == [200, 200, 429]


@pytest.mark.parametrize(
    "query", ["q=%3Cscript%3Ealert(1)%3C/script%3E", "id=1%27%20OR%20%271%27%3D%271"]
)
def test_encoded_payload_is_blocked(make_client: Any, query: str) -> None:
    assert make_client().get(f"/?{query}").status_code == 403


def test_exempt_path_and_view(make_client: Any) -> None:
    client = make_client(exempt_paths=("/items",))
    guard_django.get_guard().ip_bans.ban_ip(CLIENT, 60)
    assert client.get("/health").status_code == 200
    assert client.get("/items/3").status_code == 200
    assert client.get("/").status_code == 403


def test_passive_mode_never_blocks(make_client: Any, caplog: pytest.LogCaptureFixture) -> None:
    client = make_client(passive=True)
    with caplog.at_level(logging.INFO, logger="guard_core.decision"):
        assert client.get("/?q=<script>").status_code == 200
        assert [client.get("/login").status_code for _ in range(3)] == [200, 200, 200]
    messages = [r.getMessage() for r in caplog.records if r.name == "guard_core.decision"]
    assert any("verdict=attack_pattern action=logged" in m for m in messages)
    assert any("verdict=rate_limited action=logged" in m for m in messages)


def test_not_an_ip_peer_is_not_an_error(make_client: Any) -> None:
    client = make_client(peer="", default_limits="1/minute")
    assert [client.get("/").status_code for _ in range(3)] == [200, 200, 200]
    assert client.get("/?q=%3Cscript%3E").status_code == 403


def test_bad_settings_are_refused_at_startup() -> None:
    bad: object
    for bad in ({"passive": "yes"}, {"config": "redis://x"}, {"no_such_field": 1}, []):
        with override_settings(GUARD_CORE=bad):
            guard_django.reset_process_guard()
            with pytest.raises(ImproperlyConfigured):
                guard_django.process_guard()
    guard_django.reset_process_guard()
