"""FastAPI behind guard-core: `REDIS_URL=redis://... uvicorn examples.fastapi_app:app`."""

import os

from fastapi import FastAPI

from guard_core import SecurityConfig, rate_limit
from guard_core.adapters.asgi import GuardMiddleware

app = FastAPI()
app.add_middleware(
    GuardMiddleware,  # type: ignore[arg-type]  # Starlette's protocol is stricter than ASGI
    config=SecurityConfig(redis_url=os.environ.get("REDIS_URL", "redis://localhost:6379/0")),
    trusted_proxies=["127.0.0.1"],  # a reverse proxy on this host sets X-Forwarded-For
    auto_ban_threshold=5,  # more than 5 blocked requests in a minute: banned for an hour
)


@app.get("/")
async def index() -> dict[str, str]:
    return {"hello": "world"}


@app.get("/login")
@rate_limit("3/minute")
async def login() -> dict[str, str]:
    return {"login": "form"}
