"""Route templates of Django requests, as the URL resolver routes them.

A template has a leading '/' (`/users/<int:pk>/`, `/^articles/(?P<year>[0-9]{4})/$` for a
`re_path`) and no language prefix: `i18n_patterns` routes `/en/login/` and `/fr/login/` to
one view, so both are `/login/` (one window, one rule). The language is taken from the path
(as LocaleMiddleware does), so the template is the same whether or not LocaleMiddleware ran
before the guard. The request's own `urlconf` (set by a middleware) is honoured.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.urls import LocalePrefixPattern, Resolver404, resolve
from django.utils import translation

from guard_core._shared.policy.rate_limit_rules import RouteRule, rule_of


def route_of(request: HttpRequest) -> tuple[str | None, RouteRule | None]:
    """(template, rule of the view) of the route the request reaches; (None, None) when
    it reaches none."""
    path = request.path_info
    urlconf = getattr(request, "urlconf", None)
    language = translation.get_language_from_path(path) if settings.USE_I18N else None
    try:
        # a path without a language prefix resolves in the default language, never in the
        # one this thread last activated (LocaleMiddleware does not deactivate it)
        if settings.USE_I18N:
            resolving: Any = translation.override(language or settings.LANGUAGE_CODE)
        else:
            resolving = nullcontext()
        with resolving:
            match = resolve(path, urlconf)
    except Resolver404:
        return None, None
    tried = getattr(match, "tried", None)
    chain: list[Any] = list(tried[-1]) if tried else []
    # a resolver that does not say what it tried: its own route
    template = _joined(chain) if chain else match.route or ""
    return "/" + template.lstrip("^/"), rule_of(match.func)


def _joined(chain: list[Any]) -> str:
    """The route of a resolver chain (root first), language prefixes left out."""
    route = ""
    for entry in chain:
        pattern = getattr(entry, "pattern", None)
        if pattern is None or isinstance(pattern, LocalePrefixPattern):
            continue
        piece = str(pattern)
        route += piece.removeprefix("^") if route else piece
    return route
