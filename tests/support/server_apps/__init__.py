"""Applications the real-server tests run (uvicorn, gunicorn): each reads REDIS_URL and
REDIS_PREFIX, trusts 127.0.0.1 as its reverse proxy, and answers POST /echo with the
SHA-256 and size of the body it read (streamed)."""

from __future__ import annotations

import os
from typing import Any

from guard_core.models import SecurityConfig


def config() -> SecurityConfig:
    return SecurityConfig(
        redis_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        redis_prefix=os.environ.get("REDIS_PREFIX", "servers:"),
    )


#: The settings every server app is guarded with (the rules by each framework's template).
COMMON: dict[str, Any] = {"trusted_proxies": ["127.0.0.1"], "default_limits": ""}
