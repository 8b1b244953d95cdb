"""Django behind guard-core, in one file: `gunicorn examples.django_app:application`."""

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, JsonResponse
from django.urls import path

from guard_core import SecurityConfig, rate_limit

settings.configure(
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    INSTALLED_APPS=["guard_core.adapters.django.GuardCoreConfig"],
    MIDDLEWARE=["guard_core.adapters.django.GuardMiddleware"],
    GUARD_CORE={
        "config": SecurityConfig(redis_url=os.environ.get("REDIS_URL", "redis://localhost:6379/0")),
        "trusted_proxies": ["127.0.0.1"],  # a reverse proxy on this host sets X-Forwarded-For
        "auto_ban_threshold": 5,
    },
)


@rate_limit("3/minute")
def login(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"login": "form"})


urlpatterns = [path("", lambda request: JsonResponse({"hello": "world"})), path("login", login)]
application = get_wsgi_application()
