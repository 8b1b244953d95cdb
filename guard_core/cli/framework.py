"""The `guard-core` command inside a framework's own command line: `flask guard ...`
(registered on `app.cli` by `FlaskGuard`) and `manage.py guard ...` (a management command of
the guard_core Django app).

It is the same group, with the same commands, options and exit codes; only the
configuration differs: the application's `SecurityConfig` (`FlaskGuard`'s, or
`settings.GUARD_CORE["config"]`), with `--redis-url`, `--prefix` and `--set` applied over it.
The `GUARD_CORE_*` variables are not read there: the application's configuration is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

import guard_core.cli.commands  # noqa: F401  (registers the commands)
from guard_core.cli.group import GuardGroup, Session, cli
from guard_core.models import SecurityConfig


def framework_group(name: str, config: Callable[[], SecurityConfig]) -> click.Group:
    """The `guard-core` group under another name, on the configuration `config()` gives
    (called when a command needs it, so inside the framework's application context)."""

    @click.pass_context
    def callback(ctx: click.Context, /, **options: Any) -> Any:
        ctx.ensure_object(Session).base = config
        assert cli.callback is not None
        return ctx.invoke(cli.callback, **options)

    return GuardGroup(
        name=name,
        commands=cli.commands,
        params=cli.params,
        callback=callback,
        help=cli.help,
        context_settings=cli.context_settings,
    )
