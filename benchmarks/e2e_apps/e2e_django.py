"""The Django app of bench_e2e.py: `gunicorn e2e_django:application`, run from this folder.

E2E_VARIANT: "bare", "ours" (our middleware), "ours_nolease" (leases off), "ours_nobody"
(body scanning off) or "django_ratelimit" (its decorator, on a Redis cache); E2E_REDIS_URL:
the Redis they share. Every variant allows every request (LIMIT is never reached).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, JsonResponse
from django.urls import path

VARIANT = os.environ.get("E2E_VARIANT", "bare")
#: "ours" runs with the default local quota leases (1 % of the limit); "ours_nolease"
#: with them off (every hit a round trip to Redis); "ours_nobody" with body scanning off
LEASE = 0.0 if VARIANT == "ours_nolease" else 0.01
BODY_MAX_BYTES = 0 if VARIANT == "ours_nobody" else 65_536
OURS = ("ours", "ours_nolease", "ours_nobody")
REDIS_URL = os.environ.get("E2E_REDIS_URL", "redis://127.0.0.1:6379/0")
LIMIT = "1000000/m"

options: dict[str, Any] = {"MIDDLEWARE": []}
if VARIANT in OURS:
    from guard_core import SecurityConfig

    options = {
        "INSTALLED_APPS": ["guard_core.adapters.django.GuardCoreConfig"],
        "MIDDLEWARE": ["guard_core.adapters.django.GuardMiddleware"],
        "GUARD_CORE": {
            "config": SecurityConfig(redis_url=REDIS_URL, rate_limit_lease=LEASE),
            "default_limits": "1000000/minute",
            "body_max_bytes": BODY_MAX_BYTES,
        },
    }
elif VARIANT == "django_ratelimit":
    options = {
        "INSTALLED_APPS": ["django_ratelimit"],
        "CACHES": {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": REDIS_URL,
            }
        },
    }
elif VARIANT != "bare":
    raise SystemExit(f"unknown E2E_VARIANT {VARIANT!r}")
settings.configure(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["127.0.0.1", "localhost"], **options)


def item(request: HttpRequest, item_id: int) -> JsonResponse:
    if request.method == "POST":
        return JsonResponse({"item": item_id, "fields": len(json.loads(request.body))})
    return JsonResponse(
        {"item": item_id, "q": request.GET.get("q", ""), "page": request.GET.get("page")}
    )


view: Callable[..., JsonResponse] = item
if VARIANT == "django_ratelimit":
    from django_ratelimit.decorators import ratelimit

    view = ratelimit(key="ip", rate=LIMIT, block=True)(item)

urlpatterns = [path("items/<int:item_id>", view)]
application = get_wsgi_application()
