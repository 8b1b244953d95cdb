"""`guard-core keys`: the keys under the prefix, with their types and times to live."""

from __future__ import annotations

import click
from rich.console import Console

from guard_core.cli.group import (
    Session,
    cli,
    json_option,
)
from guard_core.cli.render import emit, span, table
from guard_core.cli.state import (
    describe_keys,
    guard_keys,
    where,
)

# -- keys ----------------------------------------------------------------------------------


@cli.command()
@click.argument("pattern", default="*")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help="Keys shown at most.",
)
@json_option
@click.pass_obj
def keys(session: Session, pattern: str, limit: int) -> None:
    """List keys under the prefix, with type and expiry.

    PATTERN is a glob relative to the prefix, e.g. 'banned_ips:*'; keys are found by SCAN.
    """
    with session.guard() as guard:
        found = guard_keys(guard, pattern)
        shown = describe_keys(guard, found[:limit])
    rows = [{"key": k.key, "type": k.type, "ttl": k.ttl} for k in shown]
    title = f"{len(found)} keys match {pattern!r}"
    if len(found) > limit:
        title += f" (first {limit} shown)"

    def _render(out: Console) -> None:
        if not rows:
            out.print(f"no keys match {pattern!r} under {where(guard)}")
            return
        out.print(
            table(
                title,
                ("key", "type", "expires in"),
                [(k.key, k.type, "never" if k.ttl is None else span(k.ttl)) for k in shown],
            )
        )

    emit(session.as_json, {"pattern": pattern, "total": len(found), "keys": rows}, _render)
