"""`guard-core bans list/add/remove/check/import/export`."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from guard_core._shared.addresses import canonical_target, parse_ip, parse_network
from guard_core.cli import render
from guard_core.cli.ban_files import BanList, export_lines, read_bans
from guard_core.cli.group import (
    BAN_REASON,
    GuardGroup,
    OneLineError,
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
    describe_failure,
    where,
)

#: Who the bans this command makes are by (`by` of the ban record; an instance's id otherwise).
BY_CLI = "cli"
#: The reason of an imported line that gives none (`--reason` changes it).
IMPORT_REASON = "imported with the guard-core command"

# -- bans ----------------------------------------------------------------------------------


@cli.group(cls=GuardGroup)
def bans() -> None:
    """IP and network bans: list, add, remove, check, import, export."""


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
        # an instance's id, or "cli"; None: a ban of an older layout
        "by": record.by or None,
    }


def _who(row: dict[str, Any]) -> str:
    return str(row["by"] or "unknown")


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
        if not out.is_terminal:  # piped or redirected: whole rows, not folded to 80 columns
            out.width = max(out.width, 200)
        out.print(
            table(
                f"{len(rows)} bans under {where(guard)}",
                ("target", "kind", "reason", "banned at", "expires", "by", "remaining"),
                [
                    (
                        r["target"], r["kind"], r["reason"], r["banned"] or "-", r["expires"],
                        _who(r), span(r["remaining"]),
                    )
                    for r in rows
                ],
                whole=("target", "kind"),
            )
        )  # fmt: skip

    emit(session.as_json, {"bans": rows}, _render)


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
    canonical = canonical_target(target)
    seconds = render.parse_duration(duration) if duration is not None else None
    with session.guard() as guard:
        seconds = seconds if seconds is not None else guard.config.ip_ban_default_duration
        if not guard.ip_bans.ban_ip(canonical, seconds, reason=reason, by=BY_CLI):
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
    canonical = canonical_target(target)
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
            f"{m['target']} ({m['reason'] or 'no reason'}; banned {m['banned'] or '-'} by "
            f"{_who(m)}; until {m['expires']}, {span(m['remaining'])} left)"
            for m in matches
        )
        out.print(f"{address} is BANNED" + (f" by {reasons}" if reasons else ""))

    emit(session.as_json, data, _render)
    if not banned:
        raise SystemExit(1)


# -- import and export ---------------------------------------------------------------------


@bans.command("import")
@click.argument("source", metavar="FILE|-", type=click.File("rb"))
@click.option(
    "--duration",
    "-d",
    default=None,
    metavar="DURATION",
    help="For lines that give none: seconds, or like 30m, 1h, 7d "
    "(default ip_ban_default_duration).",
)
@click.option(
    "--reason", "-r", default=IMPORT_REASON, show_default=True, help="For lines that give none."
)
@click.option(
    "--strict", is_flag=True, help="Any bad line fails the import before anything is written."
)
@json_option
@click.pass_obj
def bans_import(
    session: Session, source: IO[bytes], duration: str | None, reason: str, strict: bool
) -> None:
    """Ban every address and network of a list: one a line, `ADDRESS [DURATION|- [REASON]]`,
    `#` and `;` starting comments (FireHOL netsets and Spamhaus DROP lists read as they
    are); `-` reads stdin. Bad lines are reported on stderr with their numbers, and the
    good ones banned.

    Exit status: 0 every line good, 1 some lines bad (with --strict: nothing written), 2 a
    usage error or Redis failed."""
    name = "<stdin>" if source is sys.stdin.buffer else str(getattr(source, "name", "<stdin>"))
    with answering():
        seconds = render.parse_duration(duration) if duration is not None else None
        config = session.config()
        default = seconds if seconds is not None else config.ip_ban_default_duration
        started = time.perf_counter()
        parsed = read_bans(
            (line.rstrip(b"\r\n") for line in source), duration=default, reason=reason
        )
        for bad in parsed.bad:
            click.echo(f"guard-core: {name}:{bad.number}: {bad.error}", err=True)
        if strict and parsed.bad:
            raise OneLineError(f"{len(parsed.bad)} bad lines in {name}: nothing written (--strict)")
        with session.guard() as guard:
            bar = sys.stdout.isatty() and not session.as_json
            with _progress(len(parsed.bans), enabled=bar) as progress:
                done = guard.store.bans.ban_many(parsed.bans, by=BY_CLI, progress=progress)
            if done.unwritten:
                raise CommandError(
                    f"Redis at {where(guard)} failed during the import "
                    f"({describe_failure(guard)}): {done.taken} of {len(parsed.bans)} bans "
                    f"written, {done.unwritten} not"
                )
    elapsed = time.perf_counter() - started
    _report_import(session, name, parsed, done, elapsed)
    if parsed.bad:
        raise SystemExit(1)


def _report_import(session: Session, name: str, parsed: BanList, done: Any, elapsed: float) -> None:
    networks = sum(1 for target, _, _ in parsed.bans if "/" in target)
    data = {
        "source": name,
        "lines": parsed.lines,
        "bans": len(parsed.bans),
        "addresses": len(parsed.bans) - networks,
        "networks": networks,
        "imported": done.taken,
        "superseded": done.superseded,
        "batches": done.batches,
        "bad": len(parsed.bad),
        "bad_lines": [{"line": bad.number, "error": bad.error} for bad in parsed.bad],
        "seconds": round(elapsed, 3),
        "by": BY_CLI,
    }

    def _render(out: Console) -> None:
        rate = len(parsed.bans) / elapsed if elapsed > 0 else 0.0
        out.print(
            f"imported {done.taken:,} bans from {name} ({data['addresses']:,} addresses, "
            f"{networks:,} networks) in {elapsed:.1f} s, {rate:,.0f} bans/s"
        )
        if done.superseded:
            out.print(
                f"{done.superseded:,} kept out by a later change of the same target "
                "(a lift or ban made since the import began, or a later line)"
            )
        if parsed.bad:
            out.print(f"{len(parsed.bad):,} bad lines, listed on stderr, were skipped")

    emit(session.as_json, data, _render)


@contextmanager
def _progress(total: int, *, enabled: bool) -> Iterator[Callable[[int], object] | None]:
    """A progress bar on the terminal (None: no bar)."""
    if not enabled or total == 0:
        yield None
        return
    columns = (
        TextColumn("importing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=render.console(), transient=True) as bar:
        task = bar.add_task("import", total=total)
        yield lambda done: bar.update(task, completed=done)


@bans.command("export")
@json_option
@click.pass_obj
def bans_export(session: Session) -> None:
    """Every current ban, one a line as `bans import` reads them (the seconds left, the
    reason quoted); or --json."""
    with session.guard() as guard:
        before = failures(guard)
        records = guard.ip_bans.list_bans()
        require_no_failure(guard, before)
        now = time.time()
        header = f"# guard-core bans export of {where(guard)} at {when(now)}: {len(records)} bans"
    if session.as_json:
        rows = [_ban_row(record, now) for record in records]
        for row, record in zip(rows, records, strict=True):
            row["duration"] = max(1, math.ceil(record.expires_at - now))
        emit(True, {"bans": rows}, lambda out: None)
        return
    click.echo(header)
    click.echo('# ADDRESS SECONDS-LEFT "REASON" (re-import: guard-core bans import FILE)')
    for line in export_lines(records, now):
        click.echo(line)
