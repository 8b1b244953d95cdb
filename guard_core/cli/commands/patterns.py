"""`guard-core patterns list/add/remove/test`."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console

from guard_core.cli.group import (
    GuardGroup,
    Session,
    answering,
    cli,
    failures,
    json_option,
    pending_writes,
    require_no_failure,
)
from guard_core.cli.render import emit, table
from guard_core.cli.state import (
    CommandError,
)

# -- patterns ------------------------------------------------------------------------------


@cli.group(cls=GuardGroup)
def patterns() -> None:
    """Attack patterns: list, add, remove, test."""


@patterns.command("list")
@click.option("--builtin", is_flag=True, help="List the built-in patterns too.")
@json_option
@click.pass_obj
def patterns_list(session: Session, builtin: bool) -> None:
    """The custom patterns every instance uses (and how many built-in ones)."""
    with session.guard() as guard:
        found = guard.patterns.get_patterns()
    data: dict[str, Any] = {"custom": list(found.custom), "builtin_count": len(found.builtin)}
    if builtin:
        data["builtin"] = list(found.builtin)

    def _render(out: Console) -> None:
        if found.custom:
            out.print(
                table(
                    f"{len(found.custom)} custom patterns",
                    ("pattern",),
                    [(p,) for p in found.custom],
                )
            )
        else:
            out.print("no custom patterns")
        if builtin:
            out.print(
                table(
                    f"{len(found.builtin)} built-in patterns",
                    ("pattern",),
                    [(p,) for p in found.builtin],
                )
            )
        else:
            out.print(f"(and {len(found.builtin)} built-in patterns: --builtin lists them)")

    emit(session.as_json, data, _render)


@patterns.command("add")
@click.argument("pattern")
@json_option
@click.pass_obj
def patterns_add(session: Session, pattern: str) -> None:
    """Add a custom pattern (a regular expression) for every instance."""
    with session.guard() as guard:
        guard.patterns.add_pattern(pattern)
        if pending_writes(guard, "patterns"):
            raise CommandError(f"Redis did not take the pattern {pattern!r}")
    emit(session.as_json, {"added": pattern}, lambda out: out.print(f"added pattern: {pattern}"))


@patterns.command("remove")
@click.argument("pattern")
@json_option
@click.pass_obj
def patterns_remove(session: Session, pattern: str) -> None:
    """Remove a custom pattern."""
    with session.guard() as guard:
        removed = guard.patterns.remove_pattern(pattern)
        if pending_writes(guard, "patterns"):
            raise CommandError(f"Redis did not take the removal of {pattern!r}")
    message = f"removed pattern: {pattern}" if removed else f"not a custom pattern: {pattern}"
    emit(session.as_json, {"pattern": pattern, "removed": removed}, lambda out: out.print(message))


@patterns.command("test")
@click.argument("text")
@json_option
@click.pass_obj
def patterns_test(session: Session, text: str) -> None:
    """Which patterns (built-in and custom) match TEXT.

    Exit status: 0 a pattern matches, 1 none does, 2 an error (as grep's)."""
    with answering(), session.guard() as guard:
        before = failures(guard)
        matches = guard.patterns.detect(text)
        require_no_failure(guard, before)
    rows = [{"pattern": m.pattern, "category": m.category} for m in matches]

    def _render(out: Console) -> None:
        if not rows:
            out.print("no pattern matches")
            return
        out.print(
            table(
                f"{len(rows)} patterns match",
                ("category", "pattern"),
                [(r["category"], r["pattern"]) for r in rows],
            )
        )

    emit(session.as_json, {"text": text, "matches": rows}, _render)
    if not rows:
        raise SystemExit(1)
