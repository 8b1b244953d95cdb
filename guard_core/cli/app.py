"""The `guard-core` commands (click), over the sync face.

Exit codes: 0 done; 1 an expected failure (Redis unreachable, bad address, bad pattern, a
setting that cannot be read), printed as one line on stderr; 2 a usage error.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click
from rich.console import Console, Group

from guard_core.cli import render
from guard_core.cli.render import emit, span, table, when
from guard_core.cli.settings import SettingError, build_config, env_name, parse_assignment
from guard_core.cli.state import (
    CommandError,
    cloud_cache,
    describe_keys,
    guard_keys,
    latency_ms,
    namespace_counts,
    rate_window,
    require_redis,
    server_info,
    where,
    window_endpoint,
)
from guard_core.exceptions import GuardRedisError
from guard_core.ip_utils import parse_ip, parse_network
from guard_core.models import SecurityConfig
from guard_core.redaction import redact_url
from guard_core.version import __version__
from guard_core_sync import Guard

F = TypeVar("F", bound=Callable[..., Any])
BAN_REASON = "banned with the guard-core command"


class OneLineError(click.ClickException):
    """An expected failure: `guard-core: error: ...` on stderr, exit status 1."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        line = " ".join(self.message.split())  # one line, whatever the message held
        click.echo(f"guard-core: error: {line}", err=True)


@dataclass
class Session:
    """What the group's options set for every command."""

    overrides: dict[str, str] = field(default_factory=dict)
    as_json: bool = False

    def config(self) -> SecurityConfig:
        return build_config(os.environ, self.overrides)

    @contextmanager
    def guard(self, *, require: bool = True) -> Iterator[Guard]:
        """A sync `Guard` on the configured Redis; fails with one line unless it answers."""
        with Guard(self.config(), serving=False) as guard:
            if require:
                require_redis(guard)
            yield guard


class GuardGroup(click.Group):
    """Turns the expected failures of every command below into one line and exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (CommandError, SettingError) as exc:
            raise OneLineError(str(exc)) from None
        except GuardRedisError as exc:
            raise OneLineError(f"Redis failed: {exc.detail}") from None
        except (ValueError, TypeError) as exc:  # bad input, named by the library
            raise OneLineError(str(exc)) from None


def json_option(func: F) -> F:
    """`--json` on a command (also accepted before the command name)."""

    def _set(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            ctx.ensure_object(Session).as_json = True

    option = click.option(
        "--json",
        "as_json",
        is_flag=True,
        expose_value=False,
        callback=_set,
        help="Machine-readable output (JSON) instead of tables.",
    )
    return option(func)


@contextmanager
def _logging(verbose: bool) -> Iterator[None]:
    """Library logs go to stderr with -v; otherwise they are kept off the terminal (the
    command reports failures itself, in one line)."""
    logger = logging.getLogger("guard_core")
    handler: logging.Handler
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("guard-core: log: %(levelname)s %(name)s: %(message)s")
        )
    else:
        handler = logging.NullHandler()
    level = logger.level
    logger.addHandler(handler)
    if verbose:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@click.group(cls=GuardGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="guard-core")
@click.option("--redis-url", metavar="URL", help=f"Redis URL (or {env_name('redis_url')}).")
@click.option(
    "--redis-prefix",
    "--prefix",
    metavar="PREFIX",
    help=f"Key prefix of the application (or {env_name('redis_prefix')}).",
)
@click.option(
    "--set",
    "assignments",
    metavar="FIELD=VALUE",
    multiple=True,
    help="Any SecurityConfig field, e.g. --set redis_socket_timeout=0.5 "
    "(or GUARD_CORE_<FIELD> in the environment).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (JSON).")
@click.option("-v", "--verbose", is_flag=True, help="Show the library's log on stderr.")
@click.pass_context
def cli(
    ctx: click.Context,
    redis_url: str | None,
    redis_prefix: str | None,
    assignments: tuple[str, ...],
    as_json: bool,
    verbose: bool,
) -> None:
    """Inspect and change the security state guard-core shares through Redis.

    Settings come from GUARD_CORE_<FIELD> environment variables named after the
    SecurityConfig fields (GUARD_CORE_REDIS_URL, GUARD_CORE_REDIS_PREFIX, ...), then from
    the flags. Credentials in the URL are never printed.
    """
    session = ctx.ensure_object(Session)
    session.as_json = session.as_json or as_json
    for text in assignments:
        name, value = parse_assignment(text)
        session.overrides[name] = value
    if redis_url is not None:
        session.overrides["redis_url"] = redis_url
    if redis_prefix is not None:
        session.overrides["redis_prefix"] = redis_prefix
    ctx.with_resource(_logging(verbose))


# -- status --------------------------------------------------------------------------------


@cli.command()
@json_option
@click.pass_obj
def status(session: Session) -> None:
    """Mode, server, latency, breaker and key counts.

    Also the topology, pending writes and the cloud ranges cached in Redis.
    """
    with session.guard() as guard:
        health = guard.health()
        server = server_info(guard)
        topology = health.redis.get("topology") or _topology(server)
        data = {
            "version": __version__,
            "mode": health.status,
            "subsystems": health.subsystems,
            "redis": {
                "url": redact_url(guard.config.redis_url),
                "prefix": guard.config.redis_prefix,
                "topology": topology,
            },
            "server": server,
            "latency_ms": latency_ms(guard),
            "breaker": health.redis.get("breaker", {}),
            "pending_writes": health.pending_writes,
            "keys": namespace_counts(guard),
            "cloud_cache": cloud_cache(guard),
        }

    def _render(out: Console) -> None:
        latency, breaker = data["latency_ms"], data["breaker"]
        overview = table(
            f"guard-core {__version__}",
            ("", ""),
            [
                ("mode", f"{health.status} (state shared through Redis)"),
                ("redis", where(guard)),
                ("topology", topology),
                ("server", _server_line(server)),
                ("latency", _latency_line(latency)),
                ("breaker", _breaker_line(breaker)),
                ("pending writes", _pending_line(health.pending_writes)),
            ],
        )
        overview.show_header = False
        keys = table("keys per namespace", ("namespace", "keys"), data["keys"].items())
        parts: list[Any] = [overview, "", keys]
        if data["cloud_cache"]:
            parts += [
                "",
                table(
                    "cloud ranges cached",
                    ("provider", "ranges", "age", "expires in"),
                    [
                        (r["provider"], r["ranges"], span(r["age"]), span(r["ttl"]))
                        for r in data["cloud_cache"]
                    ],
                ),
            ]
        parts += [
            "",
            "Breaker and pending writes are this command's own: each application"
            " reports its own through Guard.health().",
        ]
        out.print(Group(*parts))

    emit(session.as_json, data, _render)


def _latency_line(latency: dict[str, float]) -> str:
    return f"{latency['min']} / {latency['median']} / {latency['max']} ms (min / median / max)"


def _topology(server: dict[str, Any]) -> str:
    mode = server.get("redis_mode")
    if mode is None:
        return "unknown (INFO not permitted)"
    role = server.get("role")
    return f"{mode} ({role})" if role else str(mode)


def _server_line(server: dict[str, Any]) -> str:
    if not server:
        return "unknown (INFO not permitted)"
    return (
        f"{_server_name(server)} {server.get('server_version', '?')}, "
        f"up {span(server.get('uptime_in_seconds'))}, "
        f"{server.get('connected_clients', '?')} clients, "
        f"{server.get('used_memory_human', '?')} used, "
        f"maxmemory-policy {server.get('maxmemory_policy', '?')}"
    )


def _server_name(server: dict[str, Any]) -> str:
    name = str(server.get("server_name", "redis"))
    return {"redis": "Redis", "valkey": "Valkey"}.get(name, name)


def _breaker_line(breaker: dict[str, Any]) -> str:
    return f"{breaker.get('state', '?')} (opened {breaker.get('times_opened', 0)} times)"


def _pending_line(pending: dict[str, int]) -> str:
    return f"{sum(pending.values())} in this process"


def _pending(guard: Guard, subsystem: str) -> int:
    """Writes `subsystem` holds because Redis did not take them (from `Guard.health()`)."""
    return int(guard.health().pending_writes.get(subsystem, 0))


# -- bans ----------------------------------------------------------------------------------


@cli.group(cls=GuardGroup)
def bans() -> None:
    """IP and network bans: list, add, remove, check."""


def _ban_row(record: Any, now: float) -> dict[str, Any]:
    return {
        "target": record.target,
        "kind": "network" if record.is_network else "address",
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
                ("target", "kind", "expires", "remaining"),
                [(r["target"], r["kind"], r["expires"], span(r["remaining"])) for r in rows],
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
@json_option
@click.pass_obj
def bans_add(session: Session, target: str, duration: str | None) -> None:
    """Ban an address or a CIDR network for every instance."""
    canonical = _target(target)
    seconds = render.parse_duration(duration) if duration is not None else None
    with session.guard() as guard:
        seconds = seconds if seconds is not None else guard.config.ip_ban_default_duration
        if not guard.ip_bans.ban_ip(canonical, seconds, reason=BAN_REASON):
            raise CommandError(f"refused to ban {canonical}: loopback would lock the operator out")
        if _pending(guard, "ip_bans"):
            raise CommandError(f"Redis did not take the ban of {canonical}; nothing was changed")
        data = {"banned": canonical, "duration": seconds, "expires": when(time.time() + seconds)}
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
        if _pending(guard, "ip_bans"):
            raise CommandError(f"Redis did not take the unban of {canonical}")
    message = f"lifted the ban on {canonical}" if removed else f"{canonical} was not banned"
    emit(session.as_json, {"target": canonical, "removed": removed}, lambda out: out.print(message))


@bans.command("check")
@click.argument("ip")
@json_option
@click.pass_obj
def bans_check(session: Session, ip: str) -> None:
    """Whether an address is banned, and by which ban."""
    address = parse_ip(ip)
    with session.guard() as guard:
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
    data = {"ip": str(address), "banned": banned, "by": matches}

    def _render(out: Console) -> None:
        if not banned:
            out.print(f"{address} is not banned")
            return
        reasons = ", ".join(f"{m['target']} ({span(m['remaining'])} left)" for m in matches)
        out.print(f"{address} is BANNED" + (f" by {reasons}" if reasons else ""))

    emit(session.as_json, data, _render)


# -- rate limits ---------------------------------------------------------------------------


@cli.group(cls=GuardGroup)
def ratelimit() -> None:
    """Rate-limit windows: show, reset."""


ENDPOINT_HELP = "The endpoint given to RateLimitManager.check (its window's key part)."
ROUTE_HELP = (
    "The route template of an adapter-protected app (/users/{id}; '*' for the limits of "
    "every route): the window of its limit over --window seconds."
)


@ratelimit.command("show")
@click.argument("identifier")
@click.option("--endpoint", "-e", default="", help=ENDPOINT_HELP)
@click.option("--route", "-r", default=None, help=ROUTE_HELP)
@click.option("--limit", type=int, default=None, help="Limit to compare with (default rate_limit).")
@click.option(
    "--window", type=float, default=None, help="Window in seconds (default rate_limit_window)."
)
@json_option
@click.pass_obj
def ratelimit_show(
    session: Session,
    identifier: str,
    endpoint: str,
    route: str | None,
    limit: int | None,
    window: float | None,
) -> None:
    """Hits of a client (and endpoint or route) in the current window, without counting one."""
    with session.guard() as guard:
        config = guard.config
        window = config.rate_limit_window if window is None else window
        endpoint = window_endpoint(endpoint, route, window)
        found = rate_window(
            guard,
            identifier,
            endpoint,
            limit=config.rate_limit if limit is None else limit,
            window=window,
        )
    data = {
        "identifier": identifier,
        "endpoint": endpoint,
        "key": found.key,
        "hits": found.hits,
        "limit": found.limit,
        "remaining": found.remaining,
        "window": found.window,
        "reset_after": round(found.reset_after, 3),
    }
    who = f"{identifier} on {endpoint}" if endpoint else identifier

    def _render(out: Console) -> None:
        state = (
            "limited: the next hit is REJECTED"
            if found.remaining == 0
            else (f"{found.remaining} more admitted")
        )
        out.print(
            f"{who}: {found.hits} of {found.limit} hits used in the last {span(found.window)}; "
            f"{state}" + (f"; oldest hit leaves in {span(found.reset_after)}" if found.hits else "")
        )

    emit(session.as_json, data, _render)


@ratelimit.command("reset")
@click.argument("identifier")
@click.option("--endpoint", "-e", default="", help=ENDPOINT_HELP)
@click.option("--route", "-r", default=None, help=ROUTE_HELP)
@click.option(
    "--window", type=float, default=None, help="Window in seconds (default rate_limit_window)."
)
@json_option
@click.pass_obj
def ratelimit_reset(
    session: Session, identifier: str, endpoint: str, route: str | None, window: float | None
) -> None:
    """Forget a client's window (and endpoint or route), for every instance."""
    with session.guard() as guard:
        config = guard.config
        window = config.rate_limit_window if window is None else window
        endpoint = window_endpoint(endpoint, route, window)
        before = rate_window(guard, identifier, endpoint, limit=config.rate_limit, window=window)
        guard.rate_limiter.reset(identifier, endpoint=endpoint)
        after = rate_window(guard, identifier, endpoint, limit=config.rate_limit, window=window)
        if after.hits:
            raise CommandError(f"Redis did not forget the window of {identifier}")
    who = f"{identifier} on {endpoint}" if endpoint else identifier
    emit(
        session.as_json,
        {"identifier": identifier, "endpoint": endpoint, "cleared": before.hits},
        lambda out: out.print(f"reset {who}: {before.hits} hits forgotten"),
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
        if _pending(guard, "patterns"):
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
        if _pending(guard, "patterns"):
            raise CommandError(f"Redis did not take the removal of {pattern!r}")
    message = f"removed pattern: {pattern}" if removed else f"not a custom pattern: {pattern}"
    emit(session.as_json, {"pattern": pattern, "removed": removed}, lambda out: out.print(message))


@patterns.command("test")
@click.argument("text")
@json_option
@click.pass_obj
def patterns_test(session: Session, text: str) -> None:
    """Which patterns (built-in and custom) match TEXT."""
    with session.guard() as guard:
        matches = guard.patterns.detect(text)
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


# -- watch, demo, bench --------------------------------------------------------------------


@cli.command()
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="Seconds between refreshes.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0.0, max=86400.0),
    default=60.0,
    show_default=True,
    help="Seconds to watch before exiting.",
)
@json_option
@click.pass_obj
def watch(session: Session, interval: float, duration: float) -> None:
    """A live view of bans, busy windows and changes.

    Refreshes every --interval seconds for --duration seconds, through outages too.
    """
    from guard_core.cli.watch import run_watch

    with session.guard(require=False) as guard:
        if not guard.config.enable_redis:
            require_redis(guard)
        run_watch(guard, interval=interval, duration=duration, as_json=session.as_json)


@cli.command()
@click.option("--in-memory", is_flag=True, help="Run without redis-server, as if it were missing.")
def demo(in_memory: bool) -> None:
    """Tell the outage story on a throwaway Redis.

    Two instances (async and sync face), one Redis, an outage, a restart, a recovery.
    """
    from guard_core.cli.demo import run_demo

    run_demo(use_redis=not in_memory)


@cli.command()
@click.option(
    "--ops",
    type=click.IntRange(min=10, max=1_000_000),
    default=2000,
    show_default=True,
    help="Calls per measured operation.",
)
@json_option
@click.pass_obj
def bench(session: Session, ops: int) -> None:
    """Time the hot calls, with Redis and degraded.

    Uses a throwaway redis-server on 127.0.0.1, then stops it; never the configured Redis.
    """
    from guard_core.cli.bench import run_bench

    results = run_bench(ops)

    def _render(out: Console) -> None:
        out.print(
            table(
                f"sync face, {ops} calls each (throwaway redis-server on 127.0.0.1)",
                ("operation", "mode", "calls/s", "median µs", "p99 µs"),
                [
                    (
                        r["operation"],
                        r["mode"],
                        f"{r['per_second']:,.0f}",
                        f"{r['median_us']:.1f}",
                        f"{r['p99_us']:.1f}",
                    )
                    for r in results
                ],
            )
        )

    emit(session.as_json, {"ops": ops, "results": results}, _render)


def main() -> None:
    cli(prog_name="guard-core")
