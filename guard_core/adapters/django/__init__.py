"""A Django middleware and `AppConfig` over the sync face's request check.

settings.py:

    INSTALLED_APPS = [..., "guard_core.adapters.django.GuardCoreConfig"]
    MIDDLEWARE = ["guard_core.adapters.django.GuardMiddleware", ...]
    GUARD_CORE = {"config": SecurityConfig(redis_url=...), "passive": False, ...}

`GUARD_CORE` holds `config` (a `SecurityConfig`), either `settings` (a `CheckSettings`) or
`CheckSettings` fields, and `on_block` (a callable, or its dotted path, given the decision
and returning an `HttpResponse`, or None for the default JSON one). The app config validates
it at start-up (a bad value raises `ImproperlyConfigured`); each process makes and starts
one guard on its first request and closes it at exit. `get_guard()` returns this process's
`guard_core_sync.Guard`. Route templates come from the URL resolver, with a leading '/'
(`/users/<int:pk>/`), without the language prefix of `i18n_patterns` (`/en/login/` and
`/fr/login/` are both `/login/`); per-route rules from `guard_core.guard_rule` on the view,
or `rules=` by template.

- The start of the body (`body_max_bytes`) is read before the view: through
  `request.body` when the whole body is within the bound (Django keeps it, so
  `request.POST` and `request.FILES` work as usual), else from the request's stream, which
  is then replaced by one that gives back what was read and goes on with the rest.
- `key="user"` reads `request.user`: with `key="user"` in `GUARD_CORE`, the middleware
  listed before `django.contrib.auth.middleware.AuthenticationMiddleware` (or a subclass)
  is refused with `ImproperlyConfigured` naming the order; a request without
  `request.user` (no authentication middleware ran) logs one WARNING and is keyed by the
  address.
- `manage.py guard ...` is the `guard-core` command on `GUARD_CORE["config"]`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.apps import AppConfig
from django.conf import settings as django_settings
from django.core.exceptions import BadRequest, ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, JsonResponse, UnreadablePostError
from django.utils.module_loading import import_string

from guard_core._shared.policy.check_settings import CheckSettings
from guard_core._shared.policy.rate_limit_rules import views_marked
from guard_core._shared.policy.request_body import wants_body
from guard_core._shared.policy.request_model import Decision
from guard_core.models import SecurityConfig
from guard_core_sync.guard import Guard

from .._common import (
    ReplayStream,
    body_length,
    call_on_block,
    is_http1,
    read_head,
    wants_user,
    warn_once,
)
from .._process import ProcessGuard, environ_headers, environ_request
from .routes import route_of

AUTHENTICATION = "django.contrib.auth.middleware.AuthenticationMiddleware"

_lock = threading.Lock()
_process: ProcessGuard | None = None
_on_block: Callable[[Decision], Any] | None = None


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
    global _process, _on_block
    with _lock:
        process, _process, _on_block = _process, None, None
    if process is not None:
        process.close()


def _from_settings(raw: Any) -> ProcessGuard:
    if not isinstance(raw, dict):
        raise ImproperlyConfigured("GUARD_CORE must be a dict")
    global _on_block
    fields = dict(raw)
    config = fields.pop("config", None)
    settings = fields.pop("settings", None)
    on_block = fields.pop("on_block", None)
    try:
        if isinstance(on_block, str):
            try:
                on_block = import_string(on_block)
            except ImportError as exc:
                raise TypeError(f"GUARD_CORE['on_block']: {exc}") from None
        if on_block is not None and not callable(on_block):
            raise TypeError("GUARD_CORE['on_block'] must be a callable or its dotted path")
        _on_block = on_block
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
        if self.process.settings.key == "user":
            _check_order()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        check = self.process.check()
        # without rules anywhere no route can change the check: skip Django's resolver
        routed = bool(check.settings.rules) or views_marked()
        route, rule = route_of(request) if routed else (None, None)
        user = None
        if wants_user(check.settings, rule):
            account = getattr(request, "user", None)
            if account is None:
                warn_once(
                    "django-user",
                    f"key='user', but request.user is not set: GuardMiddleware comes before "
                    f"{AUTHENTICATION} in MIDDLEWARE; limits are keyed by the client address",
                )
            elif getattr(account, "is_authenticated", False):
                user = str(account.pk)
        headers = environ_headers(request.META)
        try:
            body = _read_body(request, headers, check.settings)
        except UnreadablePostError as exc:  # the client went away while sending it
            raise BadRequest("request body could not be read") from exc
        decision = check.check(
            environ_request(
                request.META, route=route, rule=rule, user=user, body=body, headers=headers
            )
        )
        if not decision.allowed:
            custom = call_on_block(_on_block, decision)
            blocked = (
                custom
                if isinstance(custom, HttpResponse)
                else JsonResponse(decision.body(), status=decision.status)
            )
            for name, value in decision.headers.items():
                if name not in blocked:
                    blocked[name] = value
            return blocked
        response = self.get_response(request)
        for name, value in decision.headers.items():
            if name not in response:
                response[name] = value
        return response


def _is_authentication(path: str) -> bool:
    if path == AUTHENTICATION:
        return True
    if "auth" not in path.lower():
        return False
    try:
        from django.contrib.auth.middleware import AuthenticationMiddleware

        found = import_string(path)
        return isinstance(found, type) and issubclass(found, AuthenticationMiddleware)
    except Exception:  # not importable here: not known to be one
        return False


def _check_order() -> None:
    """With key='user', AuthenticationMiddleware (or a subclass) listed after this
    middleware is a mistake that would key every limit by address: refused. Without one at
    all, another middleware may set request.user: a request without it is warned of."""
    middleware = [str(name) for name in getattr(django_settings, "MIDDLEWARE", ())]
    ours = [i for i, name in enumerate(middleware) if name == f"{__name__}.GuardMiddleware"]
    auth = [i for i, name in enumerate(middleware) if _is_authentication(name)]
    if ours and auth and auth[0] > ours[0]:
        raise ImproperlyConfigured(
            f"GUARD_CORE has key='user', but {middleware[ours[0]]} comes before "
            f"{middleware[auth[0]]} in MIDDLEWARE, so request.user is not set when it "
            "runs: place it after AuthenticationMiddleware"
        )


def _read_body(request: HttpRequest, headers: dict[str, str], settings: CheckSettings) -> bytes:
    """The start of the body for the check, the view still getting all of it."""
    meta = request.META
    if not wants_body(
        headers, settings.body_max_bytes, enabled=settings.detect_patterns, http1=is_http1(meta)
    ):
        return b""
    if hasattr(request, "_body"):  # read already (another middleware)
        return bytes(request.body[: settings.body_max_bytes])
    length = body_length(meta)
    if not length or getattr(request, "_read_started", False):
        return b""  # no body Django would read, or someone is reading it as a stream
    limit = getattr(django_settings, "DATA_UPLOAD_MAX_MEMORY_SIZE", None)
    if length <= settings.body_max_bytes and (limit is None or length <= limit):
        return bytes(request.body)  # kept by Django: POST, FILES and body work as usual
    stream = getattr(request, "_stream", None)
    if stream is None:
        return b""
    head = read_head(stream, min(length, settings.body_max_bytes))
    request._stream = ReplayStream(head, stream)
    return head
