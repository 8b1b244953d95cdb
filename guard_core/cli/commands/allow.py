"""`guard-core allow list/add/remove/check`: the shared allow list (`Guard.allow_list`)."""

from __future__ import annotations

import time
from typing import Any

import click
from rich.console import Console

from guard_core._shared.addresses import canonical_target, parse_ip, parse_network
from guard_core.cli import render
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
from guard_core.cli.render import emit, span, table, when
from guard_core.cli.state import CommandError, where
from guard_core_sync.handlers.allow_handler import FOREVER

#: Who the entries this command makes are by (an instance's id otherwise).
BY_CLI = "cli"


@cli.group(cls=GuardGroup)
def allow() -> None:
    """The shared allow list: addresses and networks every instance lets through unchecked
    (no ban, pattern or rate-limit check), as the adapters' exempt_ips."""


def _row(record: Any, now: float) -> dict[str, Any]:
    forever = record.expires_at >= FOREVER
    return {
        "target": record.target,
        "kind": "network" if record.is_network else "address",
        "reason": record.reason,
        "added_at": record.banned_at or None,
        "added": when(record.banned_at) if record.banned_at else "",
        "expires_at": None if forever else record.expires_at,
        "expires": "never" if forever else when(record.expires_at),
        "remaining": None if forever else round(max(0.0, record.expires_at - now), 1),
        "by": record.by or None,
    }


def _left(row: dict[str, Any]) -> str:
    return "-" if row["remaining"] is None else span(row["remaining"])


@allow.command("list")
@json_option
@click.pass_obj
def allow_list(session: Session) -> None:
    """Every entry of the allow list."""
    with session.guard() as guard:
        before = failures(guard)
        records = guard.allow_list.list_entries()
        require_no_failure(guard, before)
        now = time.time()
        rows = [_row(record, now) for record in records]

    def _render(out: Console) -> None:
        if not rows:
            out.print(f"no allow-list entries under {where(guard)}")
            return
        if not out.is_terminal:
            out.width = max(out.width, 200)
        out.print(
            table(
                f"{len(rows)} allow-list entries under {where(guard)}",
                ("target", "kind", "reason", "added", "expires", "by", "remaining"),
                [
                    (
                        r["target"], r["kind"], r["reason"], r["added"] or "-", r["expires"],
                        r["by"] or "unknown", _left(r),
                    )
                    for r in rows
                ],
                whole=("target", "kind"),
            )
        )  # fmt: skip

    emit(session.as_json, {"allowed": rows}, _render)


@allow.command("add")
@click.argument("target")
@click.option(
    "--duration",
    "-d",
    default=None,
    metavar="DURATION",
    help="How long: seconds, or like 15m, 2h, 1d (default: until removed).",
)
@click.option("--reason", "-r", default="", help="Why: stored with the entry, shown by list.")
@json_option
@click.pass_obj
def allow_add(session: Session, target: str, duration: str | None, reason: str) -> None:
    """Let an address or a CIDR network through unchecked on every instance."""
    canonical = canonical_target(target)
    seconds = render.parse_duration(duration) if duration is not None else None
    with session.guard() as guard:
        guard.allow_list.allow(canonical, seconds, reason, by=BY_CLI)
        if pending_writes(guard, "allow_list"):
            raise CommandError(f"Redis did not take the entry for {canonical}; nothing was changed")
    expires = "never" if seconds is None else when(time.time() + seconds)
    data = {"allowed": canonical, "duration": seconds, "reason": reason, "expires": expires}
    length = "until removed" if seconds is None else f"for {span(seconds)} (until {expires})"
    emit(session.as_json, data, lambda out: out.print(f"allowed {canonical} {length}"))


@allow.command("remove")
@click.argument("target")
@json_option
@click.pass_obj
def allow_remove(session: Session, target: str) -> None:
    """Take an address or a CIDR network off the allow list."""
    canonical = canonical_target(target)
    with session.guard() as guard:
        removed = guard.allow_list.remove(canonical)
        if pending_writes(guard, "allow_list"):
            raise CommandError(f"Redis did not take the removal of {canonical}")
    message = f"removed {canonical}" if removed else f"{canonical} was not on the allow list"
    emit(session.as_json, {"target": canonical, "removed": removed}, lambda out: out.print(message))


@allow.command("check")
@click.argument("ip")
@json_option
@click.pass_obj
def allow_check(session: Session, ip: str) -> None:
    """Whether an address is on the allow list, and by which entries.

    Exit status: 0 allowed, 1 not, 2 an error (as grep's)."""
    with answering():
        address = parse_ip(ip)
        with session.guard() as guard:
            before = failures(guard)
            records = guard.allow_list.list_entries()
            require_no_failure(guard, before)
            now = time.time()
            matches = [
                _row(record, now)
                for record in records
                if address.version == parse_network(record.target).version
                and address in parse_network(record.target)
            ]
    data = {"ip": str(address), "allowed": bool(matches), "by": matches}

    def _render(out: Console) -> None:
        if not matches:
            out.print(f"{address} is not on the allow list")
            return
        found = ", ".join(
            f"{m['target']} ({m['reason'] or 'no reason'}; until {m['expires']})" for m in matches
        )
        out.print(f"{address} is ALLOWED by {found}")

    emit(session.as_json, data, _render)
    if not matches:
        raise SystemExit(1)
