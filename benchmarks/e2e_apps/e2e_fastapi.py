"""The FastAPI app of bench_e2e.py: `uvicorn e2e_fastapi:app`, run from this folder.

E2E_VARIANT: "bare", "ours" (GuardMiddleware), "ours_nolease" (leases off), "ours_nobody"
(body scanning off), "slowapi" or "fastapi_guard"; E2E_REDIS_URL: the Redis they share.
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
elif VARIANT != "bare":
    raise SystemExit(f"unknown E2E_VARIANT {VARIANT!r}")
