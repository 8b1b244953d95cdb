"""Flask behind FlaskGuard in both README forms: `constructed` (FlaskGuard(app, ...)) and
`factory` (init_app), with a blueprint under /api."""

from __future__ import annotations

import hashlib
from typing import Any

from flask import Blueprint, Flask, Response, request

from guard_core import Decision, rate_limit
from guard_core.adapters.flask import FlaskGuard

from . import COMMON, config

RULES = {"/limited": "2/minute", "/api/items/<int:item_id>": "1/minute"}


def on_block(decision: Decision) -> Response | None:
    if decision.verdict == "rate_limited":
        return Response("slow down", status=429, mimetype="text/plain")
    return None


def build() -> Flask:
    app = Flask(__name__)

    @app.post("/echo")
    def echo() -> dict[str, Any]:
        digest, size = hashlib.sha256(), 0
        while chunk := request.stream.read(65536):
            digest.update(chunk)
            size += len(chunk)
        return {"sha256": digest.hexdigest(), "size": size}

    @app.get("/")
    def index() -> dict[str, str]:
        return {"hello": "world"}

    @app.get("/limited")
    def limited() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/login")
    @rate_limit("2/minute")
    def login() -> dict[str, str]:
        return {"login": "form"}

    api = Blueprint("api", __name__, url_prefix="/api")

    @api.get("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, int]:
        return {"item": item_id}

    app.register_blueprint(api)
    return app


constructed = build()
FlaskGuard(constructed, config=config(), rules=RULES, on_block=on_block, **COMMON)

factory = build()
extension = FlaskGuard(config=config(), rules=RULES, on_block=on_block, **COMMON)
extension.init_app(factory)
