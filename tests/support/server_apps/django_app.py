"""Django behind the guard's middleware (settings form), with i18n_patterns:
`gunicorn tests.support.server_apps.django:application`."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.conf.urls.i18n import i18n_patterns
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from guard_core import Decision, rate_limit

from . import COMMON, config

settings.configure(
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    INSTALLED_APPS=["guard_core.adapters.django.GuardCoreConfig"],
    MIDDLEWARE=[
        "guard_core.adapters.django.GuardMiddleware",
        "django.middleware.locale.LocaleMiddleware",
    ],
    GUARD_CORE={
        "config": config(),
        "rules": {"/limited": "2/minute", "/items/<int:item_id>/": "1/minute"},
        "on_block": f"{__name__}.on_block",
        **COMMON,
    },
)


def on_block(decision: Decision) -> HttpResponse | None:
    if decision.verdict == "rate_limited":
        return HttpResponse("slow down", status=429, content_type="text/plain")
    return None


def echo(request: HttpRequest) -> JsonResponse:
    digest, size = hashlib.sha256(), 0
    while chunk := request.read(65536):
        digest.update(chunk)
        size += len(chunk)
    return JsonResponse({"sha256": digest.hexdigest(), "size": size})


def index(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"hello": "world"})


@rate_limit("2/minute")
def login(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"login": "form"})


def item(request: HttpRequest, item_id: int) -> JsonResponse:
    return JsonResponse({"item": item_id})


urlpatterns = [
    path("", index),
    path("echo", echo),
    path("limited", index),
    *i18n_patterns(path("login/", login), path("items/<int:item_id>/", item)),
]
application = get_wsgi_application()
