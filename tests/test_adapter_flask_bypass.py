"""The Flask extension against the ways around it (issue 20): bodies, both README forms,
blueprints, forwarding chains, user keys; its on_block hook and `flask guard`."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import flask_login
import pytest
from flask import Blueprint, Flask, Response, request

from guard_core import rate_limit
from guard_core.adapters import flask as flask_adapter
from guard_core.adapters._common import _warned
from guard_core.adapters.flask import FlaskGuard
from guard_core.models import SecurityConfig
from guard_core.testing import LocalRedisServer

CLIENT = "203.0.113.31"


def build_app() -> Flask:
    app = Flask(__name__)

    @app.post("/echo")
    def echo() -> dict[str, Any]:
        body = request.get_data()
        return {"sha256": hashlib.sha256(body).hexdigest(), "size": len(body)}

    @app.post("/form")
    def form() -> dict[str, Any]:
        files = {name: f.read().decode() for name, f in request.files.items()}
        return {"form": request.form.to_dict(), "files": files}

    @app.get("/limited")
    def limited() -> dict[str, str]:
        return {"ok": "yes"}

    api = Blueprint("api", __name__, url_prefix="/api")

    @api.get("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, int]:
        return {"item": item_id}

    @api.get("/login")
    @rate_limit("1/minute")
    def login() -> dict[str, str]:
        return {"login": "form"}

    app.register_blueprint(api)
    return app


@pytest.fixture
def make(redis_server: LocalRedisServer) -> Iterator[Callable[..., tuple[Any, FlaskGuard]]]:
    made: list[FlaskGuard] = []

    def make_client(
        form: str = "constructor", peer: str = CLIENT, **settings: Any
    ) -> tuple[Any, FlaskGuard]:
        config = SecurityConfig(redis_url=redis_server.url, redis_prefix=f"fb{uuid.uuid4().hex}:")
        app = build_app()
        if form == "constructor":
            extension = FlaskGuard(app, config=config, **settings)
        else:
            extension = FlaskGuard(config=config, **settings)
            extension.init_app(app)
        made.append(extension)
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = peer
        return client, extension

    yield make_client
    for extension in made:
        extension.close()


@pytest.mark.parametrize("form", ["constructor", "init_app"])
def test_both_readme_forms_honour_rules_and_blueprint_templates(make: Any, form: str) -> None:
    client, _ = make(form, rules={"/limited": "2/minute", "/api/items/<int:item_id>": "2/minute"})
    assert [client.get("/limited").status_code for _ in range(4)] == [200, 200, 429, 429]
    assert [client.get(f"/api/items/{n}").status_code for n in (1, 2, 3)] == [200, 200, 429]
    assert [client.get("/api/login").status_code for _ in range(2)] == [200, 429]


def test_form_json_and_multipart_bodies_are_scanned(make: Any) -> None:
    client, _ = make()
    assert client.post("/echo", data={"comment": "<script>alert(1)</script>"}).status_code == 403
    assert client.post("/echo", json={"user": "' OR '1'='1"}).status_code == 403
    page = (io.BytesIO(b"<script>alert(1)</script>"), "page.html", "text/html")
    fine = client.post(
        "/form", data={"title": "fine", "upload": page}, content_type="multipart/form-data"
    )
    assert fine.status_code == 200
    assert fine.get_json() == {
        "form": {"title": "fine"},
        "files": {"upload": "<script>alert(1)</script>"},
    }
    bad = client.post(
        "/form", data={"title": "<script>x</script>"}, content_type="multipart/form-data"
    )
    assert bad.status_code == 403
    echoed = client.post("/form", data={"comment": "hello world"})
    assert echoed.get_json() == {"form": {"comment": "hello world"}, "files": {}}


def test_a_large_body_reaches_the_view_intact(make: Any) -> None:
    client, _ = make(body_max_bytes=1024)
    payload = bytes(range(256)) * 8192  # 2 MiB
    for kind in ("application/octet-stream", "text/plain"):
        response = client.post("/echo", data=payload, content_type=kind)
        assert response.get_json() == {
            "sha256": hashlib.sha256(payload).hexdigest(),
            "size": len(payload),
        }
    padded = b"x" * 2048 + b"<script>alert(1)</script>"  # past the bound: not scanned
    assert client.post("/echo", data=padded, content_type="text/plain").status_code == 200


def test_a_banned_client_behind_a_proxy_cannot_pad_the_chain(make: Any) -> None:
    client, extension = make(peer="127.0.0.1", trusted_proxies=["127.0.0.1"])
    banned = "198.51.100.62"
    extension.guard.ip_bans.ban_ip(banned, 60)
    for chain in (
        banned,
        ", ".join(["192.0.2.1"] * 999 + [banned]),
        "192.0.2.1 " * 900 + ", " + banned,
    ):
        assert client.get("/limited", headers={"X-Forwarded-For": chain}).status_code == 403
    forged = {"Forwarded": "for=192.0.2.1", "X-Forwarded-For": banned}
    assert client.get("/limited", headers=forged).status_code == 403
    assert client.get("/limited", headers={"X-Forwarded-For": "192.0.2.1"}).status_code == 200


def test_user_keys(
    make: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as without:  # an environment without flask-login
        without.setattr(flask_adapter, "_has_flask_login", lambda: False)
        with pytest.raises(TypeError, match="user="):
            FlaskGuard(config=SecurityConfig(enable_redis=False), key="user")
    client, _ = make(
        key="user", default_limits="2/minute", user=lambda: request.headers.get("X-User")
    )
    ann = [client.get("/limited", headers={"X-User": "ann"}).status_code for _ in range(3)]
    assert (ann, client.get("/limited", headers={"X-User": "bob"}).status_code) == (
        [200, 200, 429],
        200,
    )

    # a view's own key="user" with no way to know the user: one warning, keyed by address
    _warned.discard("flask-user")
    client, _ = make(default_limits="")
    app: Flask = client.application

    @app.get("/mine")
    @rate_limit("2/minute", key="user")
    def mine() -> str:
        return "mine"

    with caplog.at_level(logging.WARNING, logger="guard_core.checks"):
        codes = [client.get("/mine", headers={"X-User": u}).status_code for u in "abc"]
    assert codes == [200, 200, 429]
    assert len([r for r in caplog.records if "LoginManager" in r.getMessage()]) == 1


class _User:
    """A user as flask-login reads one."""

    is_authenticated = is_active = True
    is_anonymous = False

    def __init__(self, name: str) -> None:
        self.id = name

    def get_id(self) -> str:
        return self.id


def test_user_keys_through_flask_login(make: Any, caplog: pytest.LogCaptureFixture) -> None:
    """key="user" with no user=: flask-login's current_user keys the limit; an anonymous
    request falls back to the address, without a warning (a LoginManager is there)."""
    client, _ = make(key="user", default_limits="2/minute")
    app: Flask = client.application
    app.secret_key = "test-only"
    manager = flask_login.LoginManager(app)
    manager.user_loader(_User)

    @app.get("/login/<name>")
    def login(name: str) -> str:
        flask_login.login_user(_User(name))
        return name

    ann, bob, anonymous = app.test_client(), app.test_client(), app.test_client()
    with caplog.at_level(logging.WARNING, logger="guard_core.checks"):
        assert ann.get("/login/ann").status_code == 200  # anonymous: the address's 1st hit
        assert bob.get("/login/bob").status_code == 200  # the address's 2nd
        codes = [ann.get("/limited").status_code for _ in range(3)]
        assert codes == [200, 200, 429]  # ann's own window
        assert [bob.get("/limited").status_code for _ in range(3)] == [200, 200, 429]
        assert anonymous.get("/limited").status_code == 429  # the address's 3rd
    assert not [r for r in caplog.records if "LoginManager" in r.getMessage()]


def test_on_block_gives_the_response(make: Any) -> None:
    def on_block(decision: Any) -> Any:
        if decision.verdict == "rate_limited":
            return Response("slow down", status=429, mimetype="text/plain")
        if decision.verdict == "banned":
            return ("go away", 403)
        raise RuntimeError("a broken hook")

    client, extension = make(on_block=on_block)
    limited = [client.get("/api/login") for _ in range(2)][-1]
    assert (limited.status_code, limited.get_data(as_text=True)) == (429, "slow down")
    assert limited.headers["Retry-After"].isdigit() and limited.headers["X-Frame-Options"] == "DENY"
    attack = client.get("/limited?q=<script>")
    assert (attack.status_code, attack.get_json()) == (403, {"detail": "suspicious request"})
    extension.guard.ip_bans.ban_ip(CLIENT, 60)
    assert client.get("/limited").get_data(as_text=True) == "go away"


def test_flask_guard_command_uses_the_apps_config(make: Any) -> None:
    client, extension = make()
    runner = client.application.test_cli_runner()
    assert runner.invoke(args=["guard", "--help"]).exit_code == 0
    added = runner.invoke(args=["guard", "bans", "add", "198.51.100.63", "--duration", "60"])
    assert added.exit_code == 0, added.output
    assert extension.guard.ip_bans.is_ip_banned("198.51.100.63")  # the app's prefix
    listed = runner.invoke(args=["guard", "--json", "bans", "list"])
    assert listed.exit_code == 0, listed.output
    assert "198.51.100.63" in json.dumps(json.loads(listed.output))
    checked = runner.invoke(args=["guard", "bans", "check", "198.51.100.64"])
    assert checked.exit_code == 1  # not banned: the exit status answers, as guard-core's


def test_a_body_read_before_the_guard_is_scanned_from_its_cache_or_said_once(
    redis_server: LocalRedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    _warned.discard("flask-body-read")
    config = SecurityConfig(redis_url=redis_server.url, redis_prefix=f"fr{uuid.uuid4().hex}:")
    for reader, expected in (("get_data", 403), ("form", 200)):
        app = build_app()

        @app.before_request
        def read_first(reader: str = reader) -> None:
            if reader == "get_data":
                request.get_data(cache=True)
            else:
                request.form.to_dict()

        extension = FlaskGuard(app, config=config)  # registered after read_first
        try:
            client = app.test_client()
            client.environ_base["REMOTE_ADDR"] = CLIENT
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="guard_core.checks"):
                response = client.post("/echo", data={"comment": "<script>alert(1)</script>"})
                client.post("/echo", data={"comment": "<script>alert(2)</script>"})
            assert response.status_code == expected, reader
            warned = [r for r in caplog.records if "read before FlaskGuard" in r.getMessage()]
            assert len(warned) == (1 if reader == "form" else 0), reader
        finally:
            extension.close()
