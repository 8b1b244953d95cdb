"""A Flask extension over the sync face's request check.

    guard = FlaskGuard(app, config=SecurityConfig(redis_url=...))
    # or, with an application factory: guard = FlaskGuard(config=...); guard.init_app(app)

Each process makes and starts its own guard on its first request (safe under `gunicorn
--preload` and with gthread workers) and closes it at exit. `guard.guard` is this
process's `guard_core_sync.Guard` (for admin views: bans, patterns, headers). Route
templates come from Flask's URL rules (`/users/<int:user_id>`); per-route rules from
`guard_core._shared.policy.rate_limit_rules.guard_rule` on the view, or `rules=` by template.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, Response, current_app, g, request

from guard_core._shared.policy.check_settings import CheckSettings
from guard_core._shared.policy.rate_limit_rules import rule_of
from guard_core.models import SecurityConfig
from guard_core_sync.guard import Guard

from ._process import ProcessGuard, environ_request

EXTENSION = "guard_core"


class FlaskGuard:
    """Checks every request before its view runs; adds headers to every response."""

    def __init__(
        self,
        app: Flask | None = None,
        *,
        config: SecurityConfig | None = None,
        settings: CheckSettings | None = None,
        **fields: Any,
    ) -> None:
        if settings is not None and fields:
            raise TypeError("give either settings or CheckSettings fields, not both")
        self.process = ProcessGuard(config, settings or CheckSettings(**fields))
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        app.extensions[EXTENSION] = self
        app.before_request(self._before_request)
        app.after_request(self._after_request)

    @property
    def guard(self) -> Guard:
        """This process's guard, started."""
        return self.process.guard

    def close(self) -> None:
        self.process.close()

    def _before_request(self) -> Response | None:
        rule = request.url_rule
        view = current_app.view_functions.get(request.endpoint or "")
        info = environ_request(
            request.environ,
            route=rule.rule if rule is not None else None,
            rule=rule_of(view) if view is not None else None,
        )
        decision = self.process.check().check(info)
        g.guard_decision = decision
        if decision.allowed:
            return None
        return Response(
            json.dumps(decision.body()),
            status=decision.status,
            headers=decision.headers,
            mimetype="application/json",
        )

    def _after_request(self, response: Response) -> Response:
        decision = g.get("guard_decision")
        if decision is not None and decision.allowed:
            for name, value in decision.headers.items():
                if name not in response.headers:
                    response.headers[name] = value
        return response
