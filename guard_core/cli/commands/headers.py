"""`guard-core headers show`."""

from __future__ import annotations

import click
from rich.console import Console

from guard_core.cli.group import (
    GuardGroup,
    Session,
    cli,
    json_option,
)
from guard_core.cli.render import emit, table, when

# -- headers -------------------------------------------------------------------------------


@cli.group(cls=GuardGroup)
def headers() -> None:
    """Security response headers."""


@headers.command("show")
@click.argument("path", required=False)
@json_option
@click.pass_obj
def headers_show(session: Session, path: str | None) -> None:
    """The headers sent (for PATH, with its overrides)."""
    with session.guard() as guard:
        sent = guard.headers.get_headers(path)
        updated_at = guard.headers.current.updated_at
    data = {"path": path, "headers": sent, "configured_at": updated_at or None}
    source = f"configured {when(updated_at)}" if updated_at else "the defaults"

    def _render(out: Console) -> None:
        title = f"headers for {path or 'every path'} ({source})"
        out.print(table(title, ("header", "value"), sorted(sent.items())))

    emit(session.as_json, data, _render)
