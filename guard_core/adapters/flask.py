"""A Flask extension over the sync face's request check.

    guard = FlaskGuard(app, config=SecurityConfig(redis_url=...))
    # or, with an application factory: guard = FlaskGuard(config=...); guard.init_app(app)

Each process makes and starts its own guard on its first request (safe under `gunicorn
--preload` and with gthread workers) and closes it at exit. `guard.guard` is this
process's `guard_core_sync.Guard` (for admin views: bans, patterns, headers). Route
templates come from Flask's URL rules, blueprints' `url_prefix` included
(`/api/users/<int:user_id>`); per-route rules from `guard_core.guard_rule` on the view, or
`rules=` by template.

- The start of the body (`body_max_bytes`) is read from `wsgi.input` before the view and
  put back: the view's `request.get_data()`, `request.form` and `request.files` see it all.
- `key="user"` needs a user: `user=` (a callable, run in the request context, returning the
  user's id or None), else flask-login's `current_user`. Without either (no `user=` and
  flask-login not installed) `FlaskGuard` refuses to be built; when flask-login is there but
  the app has no `LoginManager`, limits fall back to the address with one WARNING.
- `on_block(decision)` may return a response (anything a view may return) or None for the
  default JSON one; the decision's headers are added to it unless it has them.
- `flask guard ...` is the `guard-core` command on the application's `SecurityConfig`.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, g, request

from guard_core._shared.policy.check_settings import CheckSettings
from guard_core._shared.policy.rate_limit_rules import rule_of
from guard_core._shared.policy.request_model import Decision
from guard_core.models import SecurityConfig
from guard_core_sync.guard import Guard

from ._common import call_on_block, check_on_block, read_wsgi_body, wants_user, warn_once
from ._process import ProcessGuard, environ_headers, environ_request

EXTENSION = "guard_core"


def _has_flask_login() -> bool:
    return importlib.util.find_spec("flask_login") is not None


class FlaskGuard:
    """Checks every request before its view runs; adds headers to every response."""

    def __init__(
        self,
        app: Flask | None = None,
        *,
        config: SecurityConfig | None = None,
        settings: CheckSettings | None = None,
        on_block: Callable[[Decision], Any] | None = None,
        user: Callable[[], str | None] | None = None,
        **fields: Any,
    ) -> None:
        if settings is not None and fields:
            raise TypeError("give either settings or CheckSettings fields, not both")
        self.process = ProcessGuard(config, settings or CheckSettings(**fields))
        self.on_block = check_on_block(on_block)
        if user is not None and not callable(user):
            raise TypeError("user must be a callable returning the user's id or None")
        self.user = user
        if self.process.settings.key == "user" and user is None and not _has_flask_login():
            raise TypeError(
                "key='user' needs the request's user: pass user=<callable returning the "
                "user's id or None>, or install flask-login (its current_user is used)"
            )
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        app.extensions[EXTENSION] = self
        app.before_request(self._before_request)
        app.after_request(self._after_request)
        _add_command(app, self)

    @property
    def guard(self) -> Guard:
        """This process's guard, started."""
        return self.process.guard

    @property
    def config(self) -> SecurityConfig:
        return self.process.config

    def close(self) -> None:
        self.process.close()

    def _user(self) -> str | None:
        if self.user is not None:
            found = self.user()
            return None if found is None else str(found)
        if _has_flask_login() and hasattr(current_app, "login_manager"):
            current_user = importlib.import_module("flask_login").current_user
            if getattr(current_user, "is_authenticated", False):
                identity = current_user.get_id()
                return None if identity is None else str(identity)
            return None
        warn_once(
            "flask-user",
            "key='user', but FlaskGuard has no user= and the app no flask-login "
            "LoginManager: limits are keyed by the client address",
        )
        return None

    @staticmethod
    def _body(environ: dict[str, Any], headers: dict[str, str], settings: CheckSettings) -> bytes:
        """The start of the body for the check. Read by something that ran before the
        guard: its cached data when it kept them (`get_data(cache=True)`); else nothing is
        left to scan, said once (register FlaskGuard before what reads the body)."""
        state = request.__dict__
        cached = getattr(request, "_cached_data", None)
        if isinstance(cached, bytes):
            return cached[: settings.body_max_bytes]
        if "form" in state or "files" in state:
            warn_once(
                "flask-body-read",
                "the request body was read before FlaskGuard's check (another before_request "
                "hook or extension): its body is not scanned; set FlaskGuard up first",
            )
            return b""
        if "stream" in state:
            del state["stream"]  # read again from the replayed input
        return read_wsgi_body(environ, headers, settings)

    def _before_request(self) -> Any:
        rule = request.url_rule
        view = current_app.view_functions.get(request.endpoint or "")
        route_rule = rule_of(view) if view is not None else None
        check = self.process.check()
        environ = request.environ
        headers = environ_headers(environ)
        body = self._body(environ, headers, check.settings)
        info = environ_request(
            environ,
            route=rule.rule if rule is not None else None,
            rule=route_rule,
            user=self._user() if wants_user(check.settings, route_rule) else None,
            body=body,
            headers=headers,
        )
        decision = check.check(info)
        g.guard_decision = decision
        if decision.allowed:
            return None
        custom = call_on_block(self.on_block, decision)
        if custom is not None:
            response = current_app.make_response(custom)
            _add_headers(response, decision.headers)
            return response
        return Response(
            json.dumps(decision.body()),
            status=decision.status,
            headers=decision.headers,
            mimetype="application/json",
        )

    def _after_request(self, response: Response) -> Response:
        decision = g.get("guard_decision")
        if decision is not None and decision.allowed:
            _add_headers(response, decision.headers)
        return response


def _add_headers(response: Response, headers: dict[str, str]) -> None:
    """Add the headers the view did not set, in one pass over the response's headers (a
    lookup and a set per header cost a fifth of a request's time under gunicorn)."""
    present = {name.lower() for name, _ in response.headers}
    response.headers.extend(
        [(name, value) for name, value in headers.items() if name.lower() not in present]
    )


def _add_command(app: Flask, extension: FlaskGuard) -> None:
    """`flask guard ...`: the guard-core command on this application's configuration (when
    the `[cli]` extra is installed; otherwise a command that says to install it)."""
    try:
        from guard_core.cli.framework import framework_group
    except ImportError:
        import click

        @click.command("guard", context_settings={"ignore_unknown_options": True})
        @click.argument("args", nargs=-1, type=click.UNPROCESSED)
        def guard(args: tuple[str, ...]) -> None:
            """The guard-core command (needs guard-core-redis[cli])."""
            raise click.ClickException("install guard-core-redis[cli] for `flask guard`")

        app.cli.add_command(guard)
        return

    app.cli.add_command(framework_group("guard", lambda: extension.config))
