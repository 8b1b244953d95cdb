"""The Flask app of bench_e2e.py: `gunicorn e2e_flask:app`, run from this folder.

E2E_VARIANT: "bare", "ours" (FlaskGuard), "ours_nolease" (leases off), "ours_nobody" (body
scanning off) or "flask_limiter"; E2E_REDIS_URL: the Redis they share. Every variant allows
every request (LIMIT is never reached).
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, request

VARIANT = os.environ.get("E2E_VARIANT", "bare")
#: "ours" runs with the default local quota leases (1 % of the limit); "ours_nolease"
#: with them off (every hit a round trip to Redis); "ours_nobody" with body scanning off
LEASE = 0.0 if VARIANT == "ours_nolease" else 0.01
BODY_MAX_BYTES = 0 if VARIANT == "ours_nobody" else 65_536
OURS = ("ours", "ours_nolease", "ours_nobody")
REDIS_URL = os.environ.get("E2E_REDIS_URL", "redis://127.0.0.1:6379/0")
LIMIT = "1000000/minute"

app = Flask(__name__)


@app.route("/items/<int:item_id>", methods=["GET", "POST"])
def item(item_id: int) -> dict[str, Any]:
    if request.method == "POST":
        return {"item": item_id, "fields": len(request.get_json())}
    return {"item": item_id, "q": request.args.get("q", ""), "page": request.args.get("page")}


if VARIANT in OURS:
    from guard_core import SecurityConfig
    from guard_core.adapters.flask import FlaskGuard

    FlaskGuard(
        app,
        config=SecurityConfig(redis_url=REDIS_URL, rate_limit_lease=LEASE),
        default_limits=LIMIT,
        body_max_bytes=BODY_MAX_BYTES,
    )
elif VARIANT == "flask_limiter":
    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address

    Limiter(
        get_remote_address,
        app=app,
        default_limits=[LIMIT],
        storage_uri=REDIS_URL,
        headers_enabled=True,
    )
elif VARIANT != "bare":
    raise SystemExit(f"unknown E2E_VARIANT {VARIANT!r}")
