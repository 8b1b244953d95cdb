"""`guard-core status`: Redis, the server, the breaker, the pending writes and the mirror."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console, Group

from guard_core._shared.redaction import redact_url
from guard_core.cli.group import (
    Session,
    cli,
    json_option,
)
from guard_core.cli.render import emit, span, table
from guard_core.cli.state import (
    cloud_cache,
    describe_failure,
    latency_ms,
    namespace_counts,
    server_info,
    where,
)
from guard_core.models import GuardHealth
from guard_core.version import __version__
from guard_core_sync import Guard

# -- status --------------------------------------------------------------------------------


@cli.command()
@json_option
@click.pass_obj
def status(session: Session) -> None:
    """Mode, server, latency, breaker and key counts.

    Also the topology, pending writes and the cloud ranges cached in Redis. With Redis
    unreachable (or disabled) it reports what it can, the reason among it, and exits 1.
    """
    with session.guard(require=False) as guard:
        health = guard.health()
        if health.status != "redis":
            _report_unreachable(session, guard, health)
            return
        server = server_info(guard)
        topology = health.redis.get("topology") or _topology(server)
        data = {
            "version": __version__,
            "reachable": True,
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


def _report_unreachable(session: Session, guard: Guard, health: GuardHealth) -> None:
    """What the command knows with Redis unreachable or disabled; then exit 1 (a probe
    reads the JSON, or the status, either way)."""
    if health.status == "disabled":
        error = "Redis is disabled (GUARD_CORE_ENABLE_REDIS=false): there is no shared state"
    else:
        error = f"Redis at {where(guard)} is unreachable: {describe_failure(guard)}"
    data = {
        "version": __version__,
        "reachable": False,
        "mode": health.status,
        "subsystems": health.subsystems,
        "redis": {"url": redact_url(guard.config.redis_url), "prefix": guard.config.redis_prefix},
        "error": error,
        "breaker": health.redis.get("breaker", {}),
    }

    def _render(out: Console) -> None:
        overview = table(
            f"guard-core {__version__}",
            ("", ""),
            [
                ("mode", f"{health.status} (no shared state: Redis does not answer)"),
                ("redis", where(guard)),
                ("error", error),
                ("breaker", _breaker_line(data["breaker"])),
            ],
        )
        overview.show_header = False
        out.print(overview)

    emit(session.as_json, data, _render)
    raise SystemExit(1)


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
