"""`guard-core ratelimit show/reset`: the windows the rate limits count in."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import click
from rich.console import Console

from guard_core._shared.addresses import parse_ip
from guard_core._shared.policy.check_settings import CheckSettings
from guard_core._shared.policy.client_address import check_ipv6_prefix, group_address
from guard_core._shared.policy.rate_limit_rules import parse_limits
from guard_core._shared.validation import check_count, check_seconds
from guard_core.cli.group import (
    GuardGroup,
    InputError,
    Session,
    cli,
    json_option,
)
from guard_core.cli.render import emit, span
from guard_core.cli.state import (
    CommandError,
    rate_window,
    window_endpoint,
)
from guard_core.models import SecurityConfig

# -- rate limits ---------------------------------------------------------------------------


@cli.group(cls=GuardGroup)
def ratelimit() -> None:
    """Rate-limit windows: show, reset."""


LIMIT_HELP = (
    "The limit: a count (default rate_limit), or a limit string as the rules give it, "
    "5/minute, which sets the window too."
)
WINDOW_HELP = "Window in seconds (default rate_limit_window, or the limit string's)."


def limit_and_window(
    config: SecurityConfig, limit: str | None, window: float | None
) -> tuple[int, float]:
    """The limit and window asked for, checked as the rate limiter checks them (bad ones:
    one line, exit 2)."""
    try:
        count: object = config.rate_limit
        if limit is not None and limit.strip().isdigit():
            count = int(limit)
        elif limit is not None:
            rules = parse_limits(limit)
            if len(rules) != 1:
                raise ValueError(f"--limit takes one limit, such as 5/minute (got {limit!r})")
            rule = rules[0]
            if window is not None and window != rule.window:
                raise ValueError(f"--window {window} is not the window of {limit!r}")
            count, window = rule.count, rule.window
        seconds = config.rate_limit_window if window is None else window
        return check_count("--limit", count), check_seconds("--window", seconds)
    except (TypeError, ValueError) as exc:
        raise InputError(str(exc)) from None


def adapter_identity(identifier: str, ipv6_prefix: int) -> str:
    """The identity an adapter counts a client under: an IPv6 address as its network of
    `ipv6_prefix` bits (`2001:db8::/64`), anything else as given."""
    try:
        address = parse_ip(identifier)
        return group_address(address, check_ipv6_prefix(ipv6_prefix))
    except (TypeError, ValueError) as exc:
        if "ipv6_prefix" in str(exc):
            raise InputError(str(exc).replace("ipv6_prefix", "--ipv6-prefix")) from None
        return identifier  # not an address: a key the app chose (a user id, say)


ENDPOINT_HELP = "The endpoint given to RateLimitManager.check (its window's key part)."
ROUTE_HELP = (
    "The route template of an adapter-protected app (/users/{id}; '*' for the limits of "
    "every route): the window of its limit over --window seconds."
)


@dataclass(frozen=True)
class WindowAsked:
    """One window, as the options name it: whose, under which endpoint, against what."""

    identifier: str
    endpoint: str
    limit: int
    window: float

    @property
    def who(self) -> str:
        return f"{self.identifier} on {self.endpoint}" if self.endpoint else self.identifier


def window_options(command: Callable[..., None]) -> Callable[..., None]:
    """The identifier and the options naming its window (`show` and `reset` share them);
    the command is called with the session and a `WindowAsked`."""

    @click.argument("identifier")
    @click.option("--endpoint", "-e", default="", help=ENDPOINT_HELP)
    @click.option("--route", "-r", default=None, help=ROUTE_HELP)
    @click.option("--limit", "-l", default=None, help=LIMIT_HELP)
    @click.option("--window", type=float, default=None, help=WINDOW_HELP)
    @click.option(
        "--ipv6-prefix",
        type=int,
        default=CheckSettings().ipv6_prefix,
        show_default=True,
        help="With --route: the adapters count an IPv6 client per network of this length "
        "(the app's CheckSettings.ipv6_prefix).",
    )
    @json_option
    @click.pass_obj
    @functools.wraps(command)
    def run(
        session: Session,
        identifier: str,
        endpoint: str,
        route: str | None,
        limit: str | None,
        window: float | None,
        ipv6_prefix: int,
    ) -> None:
        count, seconds = limit_and_window(session.config(), limit, window)
        if route is not None:
            identifier = adapter_identity(identifier, ipv6_prefix)
        asked = WindowAsked(identifier, window_endpoint(endpoint, route, seconds), count, seconds)
        command(session, asked)

    return run


@ratelimit.command("show")
@window_options
def ratelimit_show(session: Session, asked: WindowAsked) -> None:
    """Hits of a client (and endpoint or route) in the current window, without counting one."""
    identifier, endpoint = asked.identifier, asked.endpoint
    with session.guard() as guard:
        found = rate_window(guard, identifier, endpoint, limit=asked.limit, window=asked.window)
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
    who = asked.who

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
@window_options
def ratelimit_reset(session: Session, asked: WindowAsked) -> None:
    """Forget a client's window (and endpoint or route), for every instance."""
    identifier, endpoint = asked.identifier, asked.endpoint
    with session.guard() as guard:
        before = rate_window(guard, identifier, endpoint, limit=asked.limit, window=asked.window)
        guard.rate_limiter.reset(identifier, endpoint=endpoint)
        after = rate_window(guard, identifier, endpoint, limit=asked.limit, window=asked.window)
        if after.hits:
            raise CommandError(f"Redis did not forget the window of {identifier}")
    who = asked.who
    emit(
        session.as_json,
        {"identifier": identifier, "endpoint": endpoint, "cleared": before.hits},
        lambda out: out.print(f"reset {who}: {before.hits} hits forgotten"),
    )
