"""The FastAPI app of bench_e2e.py: `uvicorn e2e_fastapi:app`, run from this folder.

E2E_VARIANT: "bare", "bare_headers" (the bare app sending the headers ours adds, and doing
nothing else), "ours" (GuardMiddleware), "ours_nolease" (leases off), "ours_nobody" (body
scanning off), "slowapi" or "fastapi_guard"; E2E_REDIS_URL: the Redis they share.
Every variant allows every request (LIMIT is never reached).
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI

VARIANT = os.environ.get("E2E_VARIANT", "bare")
#: "ours" runs with the default local quota leases (1 % of the limit); "ours_nolease"
#: with them off (every hit a round trip to Redis); "ours_nobody" with body scanning off
LEASE = 0.0 if VARIANT == "ours_nolease" else 0.01
BODY_MAX_BYTES = 0 if VARIANT == "ours_nobody" else 65_536
OURS = ("ours", "ours_nolease", "ours_nobody")
REDIS_URL = os.environ.get("E2E_REDIS_URL", "redis://127.0.0.1:6379/0")
COUNT, PER = 1_000_000, "minute"
LIMIT = f"{COUNT}/{PER}"

app = FastAPI()


@app.get("/items/{item_id}")
async def item(item_id: int, q: str = "", page: int = 1) -> dict[str, Any]:
    return {"item": item_id, "q": q, "page": page}


@app.post("/items/{item_id}")
async def post_item(item_id: int, payload: dict[str, Any]) -> dict[str, Any]:
    return {"item": item_id, "fields": len(payload)}


if VARIANT in OURS:
    from guard_core import SecurityConfig
    from guard_core.adapters.asgi import GuardMiddleware

    # the defaults: ban check, patterns on path and query, rate-limit and security headers
    app.add_middleware(
        GuardMiddleware,  # type: ignore[arg-type]  # Starlette's protocol is stricter than ASGI
        config=SecurityConfig(redis_url=REDIS_URL, rate_limit_lease=LEASE),
        default_limits=LIMIT,
        body_max_bytes=BODY_MAX_BYTES,
    )
elif VARIANT == "slowapi":
    from slowapi import Limiter, _rate_limit_exceeded_handler
    from slowapi.errors import RateLimitExceeded
    from slowapi.middleware import SlowAPIASGIMiddleware
    from slowapi.util import get_remote_address

    app.state.limiter = Limiter(
        key_func=get_remote_address,
        default_limits=[LIMIT],
        storage_uri=REDIS_URL,
        headers_enabled=True,
    )
    app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)
    app.add_middleware(SlowAPIASGIMiddleware)
elif VARIANT == "fastapi_guard":
    from guard import SecurityConfig as GuardConfig
    from guard import SecurityMiddleware

    # its defaults, with Redis, and a limit never reached
    config = GuardConfig(
        enable_redis=True, redis_url=REDIS_URL, rate_limit=COUNT, rate_limit_window=60
    )
    app.add_middleware(SecurityMiddleware, config=config)
elif VARIANT == "bare_headers":
    from collections.abc import Awaitable, Callable, MutableMapping

    Message = MutableMapping[str, Any]
    #: What ours adds to a response with its defaults: 6 security headers, 5 rate-limit ones
    HEADERS = [(name.encode(), value.encode()) for name, value in (
        ("strict-transport-security", "max-age=31536000; includeSubDomains"),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "strict-origin-when-cross-origin"),
        ("permissions-policy", "camera=(), geolocation=(), microphone=()"),
        ("content-security-policy", "base-uri 'self'; default-src 'self'; form-action 'self'; "
                                    "frame-ancestors 'none'; object-src 'none'"),
        ("ratelimit-policy", '"1000000-per-60s";q=1000000;w=60'),
        ("ratelimit", '"1000000-per-60s";r=999999;t=60'),
        ("x-ratelimit-limit", "1000000"),
        ("x-ratelimit-remaining", "999999"),
        ("x-ratelimit-reset", "60"),
    )]  # fmt: skip

    class AddHeaders:
        def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
            self.app = app

        async def __call__(
            self,
            scope: Message,
            receive: Callable[[], Awaitable[Message]],
            send: Callable[[Message], Awaitable[None]],
        ) -> None:
            async def sending(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message = {**message, "headers": [*message.get("headers", ()), *HEADERS]}
                await send(message)

            await self.app(scope, receive, sending)

    app.add_middleware(AddHeaders)
elif VARIANT != "bare":
    raise SystemExit(f"unknown E2E_VARIANT {VARIANT!r}")
