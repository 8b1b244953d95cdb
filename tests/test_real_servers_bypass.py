"""The ways around the guard (issue 20), through real servers over loopback: uvicorn for
both ASGI forms, `gunicorn --preload -w 2 --threads 4 -k gthread` for both Flask forms and
for Django. The test client stands for the reverse proxy (127.0.0.1, trusted): the
`X-Forwarded-For` it sends is the chain as the proxy would hand it on."""

from __future__ import annotations

import hashlib
import itertools
import os
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from guard_core.models import SecurityConfig
from guard_core.testing import LocalRedisServer
from guard_core_sync import Guard
from tests.support.servers import gunicorn_args, running_server, uvicorn_args

_addresses = itertools.count(1)
#: 10 MB, and a SHA-256 the application must see again
UPLOAD = os.urandom(1 << 16) * 160
EMPTY = hashlib.sha256(b"").hexdigest()


def plain_uvicorn(app: str, port: int) -> list[str]:
    """uvicorn that leaves X-Forwarded-For to the guard (its own proxy-header handling
    would otherwise rewrite the peer before the guard sees the chain)."""
    return [*uvicorn_args(app, port), "--no-proxy-headers"]


def address() -> str:
    return f"198.51.100.{next(_addresses)}"


@pytest.fixture(scope="module")
def shared_redis() -> Iterator[LocalRedisServer]:
    with LocalRedisServer() as server:
        yield server


SERVERS = [
    ("uvicorn", "tests.support.server_apps.asgi_app:wrapped", "/v2/items/{}"),
    ("uvicorn", "tests.support.server_apps.asgi_app:added", "/v2/items/{}"),
    ("gunicorn", "tests.support.server_apps.flask_app:constructed", "/api/items/{}"),
    ("gunicorn", "tests.support.server_apps.flask_app:factory", "/api/items/{}"),
    ("gunicorn", "tests.support.server_apps.django_app:application", "/{}/items/{}/"),
]


@pytest.mark.parametrize(
    ("server", "app", "item"), SERVERS, ids=[s[1].rpartition(".")[2] for s in SERVERS]
)
def test_no_way_around_the_guard(
    shared_redis: LocalRedisServer, server: str, app: str, item: str
) -> None:
    prefix = f"rs{uuid.uuid4().hex[:8]}:"
    args: Callable[[str, int], list[str]] = plain_uvicorn if server == "uvicorn" else gunicorn_args
    env = {"REDIS_URL": shared_redis.url, "REDIS_PREFIX": prefix}
    banned = address()
    with Guard(SecurityConfig(redis_url=shared_redis.url, redis_prefix=prefix)) as admin:
        assert admin.ip_bans.ban_ip(banned, 300)
    failed: list[str] = []

    def check(what: str, ok: bool) -> None:
        if not ok:
            failed.append(what)

    with running_server(args, app, env) as url, httpx.Client(base_url=url, timeout=30.0) as http:
        # rules= in the form the README shows, answered by the on_block hook
        me = {"X-Forwarded-For": address()}
        limited = [http.get("/limited", headers=me) for _ in range(5)]
        check("rules=", [r.status_code for r in limited] == [200, 200, 429, 429, 429])
        check("on_block", limited[-1].text == "slow down")
        check("Retry-After", limited[-1].headers.get("Retry-After", "").isdigit())

        # route templates as the framework routes: a mount, a blueprint, i18n prefixes
        me = {"X-Forwarded-For": address()}
        if "{}/items" in item:
            paths = [item.format("en", 1), item.format("fr", 2)]
        else:
            paths = [item.format(1), item.format(2)]
        check("route templates", [http.get(p, headers=me).status_code for p in paths] == [200, 429])

        # bodies: a form with <script> and a JSON SQL injection get 403
        me = {"X-Forwarded-For": address()}
        script = http.post("/echo", data={"comment": "<script>alert(1)</script>"}, headers=me)
        check("form body", script.status_code == 403)
        check(
            "JSON body",
            http.post("/echo", json={"user": "' OR '1'='1"}, headers=me).status_code == 403,
        )

        # no framework decompresses a request body: a Content-Encoding hides nothing
        gzip = {**me, "Content-Encoding": "gzip"}
        script = http.post("/echo", data={"comment": "<script>alert(1)</script>"}, headers=gzip)
        check("Content-Encoding body", script.status_code == 403)

        # 10 MB uploads reach the application intact: the start read (and scanned when it
        # is text), replayed, the rest streamed past the bound
        text = b"harmless text\n" * 5000 + UPLOAD.hex().encode()[: 10 << 20]
        form = b"comment=" + b"x" * (1 << 20) + b"&more=" + text
        for kind, body in (
            ("application/octet-stream", UPLOAD),
            ("text/plain", text),
            ("application/x-www-form-urlencoded", form),
        ):
            response = http.post("/echo", content=body, headers={**me, "Content-Type": kind})
            digest = {"sha256": hashlib.sha256(body).hexdigest(), "size": len(body)}
            check(f"{kind} upload intact", (response.status_code, response.json()) == (200, digest))
        # Django under WSGI reads no body without a Content-Length, guarded or not
        for kind, body in (("application/octet-stream", UPLOAD), ("text/plain", text)):
            chunked = http.post("/echo", content=iter([body[: 1 << 20], body[1 << 20 :]]),
                                headers={**me, "Content-Type": kind})  # fmt: skip
            expected = {"sha256": hashlib.sha256(body).hexdigest(), "size": len(body)}
            empty = {"sha256": EMPTY, "size": 0}
            intact = chunked.json() == (empty if "django" in app else expected)
            check(f"chunked {kind} upload intact", chunked.status_code == 200 and intact)

        # a banned client behind the proxy: however the chain is padded or forged
        for name, chain, reason in (
            ("banned", banned, "IP banned"),
            ("30 entries", ", ".join(["192.0.2.1"] * 30 + [banned]), "IP banned"),
            ("1,000 entries", "x," * 1000 + banned, "forwarding chain too long"),
            ("600 addresses, 6.6 KB", ", ".join(["192.0.2.1"] * 600 + [banned]),
             "forwarding chain too long"),
        ):  # fmt: skip
            response = http.get("/", headers={"X-Forwarded-For": chain})
            check(name, (response.status_code, response.json()) == (403, {"detail": reason}))
        padded = ", ".join(["192.0.2.1"] * 30 + [address()])
        check("30 entries served", http.get("/", headers={"X-Forwarded-For": padded}).is_success)
        forged = {"Forwarded": "for=192.0.2.1", "X-Forwarded-For": banned}
        check("Forwarded forged", http.get("/", headers=forged).status_code == 403)
        check(
            "others served",
            http.get("/", headers={"X-Forwarded-For": address()}).status_code == 200,
        )
    assert failed == [], " | ".join(failed)
