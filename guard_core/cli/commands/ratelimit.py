"""`guard-core ratelimit show/reset`: the windows the rate limits count in."""

from __future__ import annotations

import click
from rich.console import Console

from guard_core.cli.group import (
    GuardGroup,
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
