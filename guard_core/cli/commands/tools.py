"""`guard-core watch`, `demo` and `bench`."""

from __future__ import annotations

import click
from rich.console import Console

from guard_core.cli.group import (
    Session,
    cli,
    json_option,
)
from guard_core.cli.render import emit, table
from guard_core.cli.state import (
    require_redis,
)

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
