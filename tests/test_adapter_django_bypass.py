"""The Django middleware against the ways around it (issue 20): bodies, i18n prefixes,
forwarding chains, the order of AuthenticationMiddleware; its on_block hook and
`manage.py guard`."""

from __future__ import annotations

import hashlib
import json
import logging
import types
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf.urls.i18n import i18n_patterns
from django.core.exceptions import ImproperlyConfigured
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command, execute_from_command_line
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import Client, override_settings
from django.urls import path

from guard_core import rate_limit
from guard_core.adapters import django as guard_django
from guard_core.adapters._common import _warned
from guard_core.models import SecurityConfig
from guard_core.testing import LocalRedisServer
from tests.support import django_settings

CLIENT = "203.0.113.41"
GUARD = django_settings.GUARD
LOCALE = "django.middleware.locale.LocaleMiddleware"
AUTH = "django.contrib.auth.middleware.AuthenticationMiddleware"

django_settings.configure()


def echo(request: HttpRequest) -> JsonResponse:
    digest = hashlib.sha256()
    size = 0
    while chunk := request.read(65536):
        digest.update(chunk)
        size += len(chunk)
    return JsonResponse({"sha256": digest.hexdigest(), "size": size})


def form(request: HttpRequest) -> JsonResponse:
    files = {name: f.read().decode() for name, f in request.FILES.items()}
    return JsonResponse({"form": request.POST.dict(), "files": files})


def limited(request: HttpRequest, pk: int = 0) -> JsonResponse:
    return JsonResponse({"ok": "yes"})


@rate_limit("2/minute")
def login(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"login": "form"})


@rate_limit("2/minute", key="user")
def mine(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"mine": "yes"})


def on_block(decision: Any) -> HttpResponse | None:
    if decision.verdict == "rate_limited":
        return HttpResponse("slow down", status=429, content_type="text/plain")
    return None


urlpatterns = [
    path("echo", echo),
    path("form", form),
    path("limited", limited),
    path("mine", mine),
    *i18n_patterns(path("login/", login), path("account/<int:pk>/", limited)),
]

#: A site whose default language has no prefix (`/login/` in English, `/fr/login/`).
NO_DEFAULT_PREFIX: Any = types.ModuleType("no_default_prefix_urls")
NO_DEFAULT_PREFIX.urlpatterns = [
    *i18n_patterns(path("login/", login), prefix_default_language=False)
]


@pytest.fixture(autouse=True)
def _this_modules_urls() -> Iterator[None]:
    """This module's views, whichever module configured Django."""
    with override_settings(ROOT_URLCONF=__name__, MIDDLEWARE=[GUARD]):
        yield


@pytest.fixture
def make(redis_server: LocalRedisServer) -> Iterator[Callable[..., Client]]:
    overrides: list[Any] = []

    def make_client(
        peer: str = CLIENT, middleware: list[str] | None = None, **fields: Any
    ) -> Client:
        config = SecurityConfig(redis_url=redis_server.url, redis_prefix=f"db{uuid.uuid4().hex}:")
        override = override_settings(
            ROOT_URLCONF=__name__,
            MIDDLEWARE=middleware or [GUARD, LOCALE],
            GUARD_CORE={"config": config, **fields},
        )
        override.enable()
        overrides.append(override)
        guard_django.reset_process_guard()
        return Client(REMOTE_ADDR=peer)

    yield make_client
    guard_django.reset_process_guard()
    for override in reversed(overrides):
        override.disable()


def test_i18n_prefixes_share_one_window(make: Any) -> None:
    client = make(rules={"/account/<int:pk>/": "1/minute"})
    codes = [client.get(f"/{language}/login/").status_code for language in ("en", "fr", "de")]
    assert codes == [200, 200, 429]
    assert [
        client.get(f"/{lang}/account/{n}/").status_code for lang, n in (("fr", 1), ("en", 2))
    ] == [200, 429]


def test_an_unprefixed_path_is_matched_whatever_language_the_thread_last_used(
    make: Any,
) -> None:
    client = make()
    with override_settings(ROOT_URLCONF=NO_DEFAULT_PREFIX, LANGUAGE_CODE="en"):
        codes = [client.get(p).status_code for p in ("/fr/login/", "/login/", "/login/")]
    assert codes == [200, 200, 429]  # one window for the view, in either language


def test_a_body_the_client_stops_sending_is_a_400_not_a_500(make: Any) -> None:
    client = make()

    class Broken:
        def read(self, *args: Any) -> bytes:
            raise OSError("client went away")

        readline = read

    response = client.generic(
        "POST",
        "/echo",
        b"",
        content_type="application/x-www-form-urlencoded",
        CONTENT_LENGTH="20",
        **{"wsgi.input": Broken()},
    )
    assert response.status_code == 400


def test_form_json_and_multipart_bodies_are_scanned(make: Any) -> None:
    client = make()
    assert client.post("/echo", {"comment": "<script>alert(1)</script>"}).status_code == 403
    sqli = json.dumps({"user": "' OR '1'='1"})
    assert client.post("/echo", sqli, content_type="application/json").status_code == 403
    page = SimpleUploadedFile("page.html", b"<script>alert(1)</script>", content_type="text/html")
    fine = client.post("/form", {"title": "fine", "upload": page})
    assert fine.json() == {
        "form": {"title": "fine"},
        "files": {"upload": "<script>alert(1)</script>"},
    }
    assert client.post("/form", {"title": "<script>x</script>"}).status_code == 403
    urlencoded = client.post(
        "/form", "comment=hello+world", content_type="application/x-www-form-urlencoded"
    )
    assert urlencoded.json() == {"form": {"comment": "hello world"}, "files": {}}


def test_a_large_body_reaches_the_view_intact(make: Any) -> None:
    client = make(body_max_bytes=1024)
    payload = bytes(range(256)) * 12288  # 3 MiB, past DATA_UPLOAD_MAX_MEMORY_SIZE
    for kind in ("application/octet-stream", "text/plain"):
        response = client.post("/echo", payload, content_type=kind)
        assert response.json() == {
            "sha256": hashlib.sha256(payload).hexdigest(),
            "size": len(payload),
        }
    big_form = "a=" + "x" * 4000 + "&b=<script>alert(1)</script>"  # past the bound
    response = client.post("/form", big_form, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200 and response.json()["form"]["b"].startswith("<script>")
    head = "b=<script>alert(1)</script>&a=" + "x" * 4000  # in the bound, streamed on
    assert (
        client.post("/form", head, content_type="application/x-www-form-urlencoded").status_code
        == 403
    )


def test_a_banned_client_behind_a_proxy_cannot_pad_the_chain(make: Any) -> None:
    client = make(peer="127.0.0.1", trusted_proxies=["127.0.0.1"])
    banned = "198.51.100.65"
    guard_django.get_guard().ip_bans.ban_ip(banned, 60)
    for chain in (
        banned,
        ", ".join(["192.0.2.1"] * 999 + [banned]),
        "192.0.2.1 " * 900 + ", " + banned,
    ):
        assert client.get("/limited", HTTP_X_FORWARDED_FOR=chain).status_code == 403
    forged = client.get("/limited", HTTP_FORWARDED="for=192.0.2.1", HTTP_X_FORWARDED_FOR=banned)
    assert forged.status_code == 403
    assert client.get("/limited", HTTP_X_FORWARDED_FOR="192.0.2.1").status_code == 200


def test_user_keys_need_authentication_first(make: Any, caplog: pytest.LogCaptureFixture) -> None:
    make(middleware=[GUARD, AUTH], key="user")
    with pytest.raises(ImproperlyConfigured, match=r"before django\.contrib\.auth"):
        guard_django.GuardMiddleware(lambda request: HttpResponse())
    # no authentication middleware at all: a view keyed by user warns once, keys by address
    client = make(middleware=[GUARD])
    _warned.discard("django-user")
    with caplog.at_level(logging.WARNING, logger="guard_core.checks"):
        assert [client.get("/mine").status_code for _ in range(3)] == [200, 200, 429]
    assert len([r for r in caplog.records if AUTH in r.getMessage()]) == 1


class FakeAuthentication:
    """Sets request.user from a header (a stand-in for AuthenticationMiddleware)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        name = request.headers.get("X-User")
        request.user = types.SimpleNamespace(is_authenticated=bool(name), pk=name)
        return self.get_response(request)


def test_user_keys_by_request_user(make: Any) -> None:
    client = make(
        middleware=[f"{__name__}.FakeAuthentication", GUARD], key="user", default_limits="2/minute"
    )
    ann = [client.get("/limited", HTTP_X_USER="ann").status_code for _ in range(3)]
    assert (ann, client.get("/limited", HTTP_X_USER="bob").status_code) == ([200, 200, 429], 200)


def test_on_block_from_settings(make: Any) -> None:
    client = make(on_block=f"{__name__}.on_block")
    limited = [client.get("/en/login/") for _ in range(3)][-1]
    assert (limited.status_code, limited.content) == (429, b"slow down")
    assert limited["Retry-After"].isdigit() and limited["X-Frame-Options"] == "DENY"
    assert client.get("/limited?q=<script>").json() == {"detail": "suspicious request"}
    make(on_block="no.such.hook")
    with pytest.raises(ImproperlyConfigured, match="on_block"):
        guard_django.process_guard()


def test_manage_py_guard_uses_the_settings_config(
    make: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    make()
    call_command("guard", "bans", "add", "198.51.100.66", "--duration", "60")
    assert guard_django.get_guard().ip_bans.is_ip_banned("198.51.100.66")
    with pytest.raises(SystemExit) as done:
        execute_from_command_line(["manage.py", "guard", "--json", "bans", "list"])
    assert done.value.code == 0
    assert "198.51.100.66" in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        execute_from_command_line(["manage.py", "guard", "bans", "check", "198.51.100.67"])
    assert done.value.code == 1
