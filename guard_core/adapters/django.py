"""A Django middleware and `AppConfig` over the sync face's request check.

settings.py:

    INSTALLED_APPS = [..., "guard_core.adapters.django.GuardCoreConfig"]
    MIDDLEWARE = ["guard_core.adapters.django.GuardMiddleware", ...]
    GUARD_CORE = {"config": SecurityConfig(redis_url=...), "passive": False, ...}

`GUARD_CORE` holds `config` (a `SecurityConfig`) and either `settings` (a `CheckSettings`)
or `CheckSettings` fields. The app config validates it at start-up (a bad value raises
`ImproperlyConfigured`); each process makes and starts one guard on its first request and
closes it at exit. `get_guard()` returns this process's `guard_core_sync.Guard`. Route
templates come from the URL resolver, with a leading '/' (`/users/<int:pk>/`); per-route
rules from `guard_core.guard_rule` on the view, or `rules=` by template.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.apps import AppConfig
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve

from guard_core._shared.policy.check_settings import CheckSettings
from guard_core._shared.policy.rate_limit_rules import rule_of
from guard_core.models import SecurityConfig
from guard_core_sync.guard import Guard

from ._process import ProcessGuard, environ_request

_lock = threading.Lock()
_process: ProcessGuard | None = None


def process_guard() -> ProcessGuard:
    """The one `ProcessGuard` of this Django project, built from `settings.GUARD_CORE`."""
    global _process
    with _lock:
        if _process is None:
            _process = _from_settings(getattr(django_settings, "GUARD_CORE", {}))
        return _process


def get_guard() -> Guard:
    """This process's guard, started (for views that ban, unban or configure)."""
    return process_guard().guard


def reset_process_guard() -> None:
    """Close and forget the guard (tests that change `GUARD_CORE` call this)."""
    global _process
    with _lock:
        process, _process = _process, None
    if process is not None:
        process.close()


def _from_settings(raw: Any) -> ProcessGuard:
    if not isinstance(raw, dict):
        raise ImproperlyConfigured("GUARD_CORE must be a dict")
    fields = dict(raw)
    config = fields.pop("config", None)
    settings = fields.pop("settings", None)
    try:
        if config is not None and not isinstance(config, SecurityConfig):
            raise TypeError("GUARD_CORE['config'] must be a SecurityConfig")
        if settings is not None and fields:
            raise TypeError("GUARD_CORE takes either 'settings' or CheckSettings fields")
        if settings is not None and not isinstance(settings, CheckSettings):
            raise TypeError("GUARD_CORE['settings'] must be a CheckSettings")
        return ProcessGuard(config, settings or CheckSettings(**fields))
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(f"GUARD_CORE: {exc}") from exc


class GuardCoreConfig(AppConfig):
    """Validates `GUARD_CORE` when Django starts."""

    name = "guard_core.adapters.django"
    label = "guard_core"
    verbose_name = "guard-core"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        process_guard()


class GuardMiddleware:
    """Checks every request before the view; adds headers to every response."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.process = process_guard()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        check = self.process.check()
        try:
            match = resolve(request.path_info)
            # templates start with '/' as in the other frameworks: `/users/<int:pk>/`
            route: str | None = "/" + match.route.lstrip("^/") if match.route else "/"
            rule = rule_of(match.func)
        except Resolver404:
            route, rule = None, None
        user = None
        key = getattr(rule, "key", None) or check.settings.key
        if key == "user":
            account = getattr(request, "user", None)
            if account is not None and getattr(account, "is_authenticated", False):
                user = str(account.pk)
        decision = check.check(environ_request(request.META, route=route, rule=rule, user=user))
        if not decision.allowed:
            blocked = JsonResponse(decision.body(), status=decision.status)
            for name, value in decision.headers.items():
                blocked[name] = value
            return blocked
        response = self.get_response(request)
        for name, value in decision.headers.items():
            if name not in response:
                response[name] = value
        return response
