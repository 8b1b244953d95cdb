"""Flask behind guard-core: `REDIS_URL=redis://... gunicorn examples.flask_app:app`."""

import os

from flask import Flask

from guard_core import SecurityConfig, rate_limit
from guard_core.adapters.flask import FlaskGuard

app = Flask(__name__)
guard = FlaskGuard(
    app,
    config=SecurityConfig(redis_url=os.environ.get("REDIS_URL", "redis://localhost:6379/0")),
    trusted_proxies=["127.0.0.1"],  # a reverse proxy on this host sets X-Forwarded-For
    auto_ban_threshold=5,  # more than 5 blocked requests in a minute: banned for an hour
)


@app.get("/")
def index() -> dict[str, str]:
    return {"hello": "world"}


@app.get("/login")
@rate_limit("3/minute")
def login() -> dict[str, str]:
    return {"login": "form"}
