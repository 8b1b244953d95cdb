"""FastAPI behind GuardMiddleware in both README forms: `wrapped` (GuardMiddleware(app, ...))
and `added` (app.add_middleware), with a mounted sub-application behind its own middleware."""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from guard_core import Decision, rate_limit
from guard_core.adapters.asgi import GuardMiddleware

from . import COMMON, config

RULES = {"/limited": "2/minute", "/v2/items/{item_id}": "1/minute"}


def on_block(decision: Decision) -> Response | None:
    if decision.verdict == "rate_limited":
        return PlainTextResponse("slow down", status_code=429)
    return None


async def item(request: Request) -> PlainTextResponse:
    return PlainTextResponse(request.path_params["item_id"])


def api() -> FastAPI:
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, Any]:
        digest, size = hashlib.sha256(), 0
        async for chunk in request.stream():
            digest.update(chunk)
            size += len(chunk)
        return {"sha256": digest.hexdigest(), "size": size}

    @app.get("/")
    async def index() -> dict[str, str]:
        return {"hello": "world"}

    @app.get("/limited")
    async def limited() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/login")
    @rate_limit("2/minute")
    async def login() -> dict[str, str]:
        return {"login": "form"}

    app.mount("/v2", GZipMiddleware(Starlette(routes=[Route("/items/{item_id}", item)])))
    return app


wrapped = GuardMiddleware(api(), config=config(), rules=RULES, on_block=on_block, **COMMON)
added = api()
added.add_middleware(
    GuardMiddleware,  # type: ignore[arg-type]
    config=config(),
    rules=RULES,
    on_block=on_block,
    **COMMON,
)
