"""`guard-core bans list/add/remove/check`."""

from __future__ import annotations

import time
from typing import Any

import click
from rich.console import Console

from guard_core._shared.addresses import parse_ip, parse_network
from guard_core.cli import render
from guard_core.cli.group import (
    BAN_REASON,
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
from guard_core.cli.state import (
    CommandError,
    where,
)

# -- bans ----------------------------------------------------------------------------------


@cli.group(cls=GuardGroup)
def bans() -> None:
    """IP and network bans: list, add, remove, check."""


def _ban_row(record: Any, now: float) -> dict[str, Any]:
    return {
        "target": record.target,
        "kind": "network" if record.is_network else "address",
        "reason": record.reason,
        "banned_at": record.banned_at or None,  # None: a ban of an older layout
        "banned": when(record.banned_at) if record.banned_at else "",
        "expires_at": record.expires_at,
        "expires": when(record.expires_at),
        "remaining": round(max(0.0, record.expires_at - now), 1),
    }


@bans.command("list")
@json_option
@click.pass_obj
def bans_list(session: Session) -> None:
    """Every current ban."""
    with session.guard() as guard:
        now = time.time()
        rows = [_ban_row(record, now) for record in guard.ip_bans.list_bans()]

    def _render(out: Console) -> None:
        if not rows:
            out.print(f"no bans under {where(guard)}")
            return
        out.print(
            table(
                f"{len(rows)} bans under {where(guard)}",
                ("target", "kind", "reason", "remaining"),
                [(r["target"], r["kind"], r["reason"], span(r["remaining"])) for r in rows],
            )
        )

    emit(session.as_json, {"bans": rows}, _render)


def _target(text: str) -> str:
    """The canonical form of an address or CIDR (ValueError naming a bad one)."""
    return str(parse_network(text)) if "/" in text else str(parse_ip(text))


@bans.command("add")
@click.argument("target")
@click.option(
    "--duration",
    "-d",
    default=None,
    metavar="DURATION",
    help="How long: seconds, or like 15m, 2h, 1d (default ip_ban_default_duration).",
)
@click.option(
    "--reason",
    "-r",
    default=BAN_REASON,
    show_default=True,
    help="Why: stored with the ban, shown by bans list and bans check.",
)
@json_option
@click.pass_obj
def bans_add(session: Session, target: str, duration: str | None, reason: str) -> None:
    """Ban an address or a CIDR network for every instance."""
    canonical = _target(target)
    seconds = render.parse_duration(duration) if duration is not None else None
    with session.guard() as guard:
        seconds = seconds if seconds is not None else guard.config.ip_ban_default_duration
        if not guard.ip_bans.ban_ip(canonical, seconds, reason=reason):
            raise CommandError(f"refused to ban {canonical}: loopback would lock the operator out")
        if pending_writes(guard, "ip_bans"):
            raise CommandError(f"Redis did not take the ban of {canonical}; nothing was changed")
        data = {
            "banned": canonical,
            "duration": seconds,
            "reason": reason,
            "expires": when(time.time() + seconds),
        }
    emit(
        session.as_json,
        data,
        lambda out: out.print(f"banned {canonical} for {span(seconds)} (until {data['expires']})"),
    )


@bans.command("remove")
@click.argument("target")
@json_option
@click.pass_obj
def bans_remove(session: Session, target: str) -> None:
    """Lift the ban on an address or a CIDR network."""
    canonical = _target(target)
    with session.guard() as guard:
        removed = guard.ip_bans.unban_ip(canonical)
        if pending_writes(guard, "ip_bans"):
            raise CommandError(f"Redis did not take the unban of {canonical}")
    message = f"lifted the ban on {canonical}" if removed else f"{canonical} was not banned"
    emit(session.as_json, {"target": canonical, "removed": removed}, lambda out: out.print(message))


@bans.command("check")
@click.argument("ip")
@json_option
@click.pass_obj
def bans_check(session: Session, ip: str) -> None:
    """Whether an address is banned, and by which ban.

    Exit status: 0 banned, 1 not banned, 2 an error (as grep's)."""
    with answering():
        address = parse_ip(ip)
        with session.guard() as guard:
            before = failures(guard)
            banned = guard.ip_bans.is_ip_banned(str(address))
            now = time.time()
            matches = [
                _ban_row(record, now)
                for record in guard.ip_bans.list_bans()
                if record.target == str(address)
                or (
                    record.is_network
                    and address.version == parse_network(record.target).version
                    and address in parse_network(record.target)
                )
            ]
            require_no_failure(guard, before)
    data = {"ip": str(address), "banned": banned, "by": matches}

    def _render(out: Console) -> None:
        if not banned:
            out.print(f"{address} is not banned")
            return
        reasons = ", ".join(
            f"{m['target']} ({m['reason'] or 'no reason'}; {span(m['remaining'])} left)"
            for m in matches
        )
        out.print(f"{address} is BANNED" + (f" by {reasons}" if reasons else ""))

    emit(session.as_json, data, _render)
    if not banned:
        raise SystemExit(1)
