"""The command reads and resets the very windows the adapters count in, on one server and on
a Cluster: an adapter keys a route's limit by the route and the window (`/login|60s`), and a
Cluster wraps each key part in a hash tag; `ratelimit show/reset --route` build the same keys
through the key module."""

from __future__ import annotations

import json
import uuid
import warnings
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi import FastAPI

with warnings.catch_warnings():  # Starlette's notice about its test client's HTTP library
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from guard_core._shared.policy.rate_limit_rules import guard_rule
from guard_core.adapters.asgi import GuardMiddleware
from guard_core.cli.app import cli
from guard_core.guard import Guard
from guard_core.models import SecurityConfig

CLIENT = ("203.0.113.20", 40000)
LOGIN_LIMIT = 3


@pytest.fixture(params=["standalone", "cluster"])
def redis_url(request: pytest.FixtureRequest) -> str:
    name = "redis_server" if request.param == "standalone" else "redis_cluster"
    url: str = request.getfixturevalue(name).url
    return url


def protected_app(guard: Guard) -> FastAPI:
    app = FastAPI()
    app.add_middleware(GuardMiddleware, guard=guard)  # type: ignore[arg-type]

    @app.get("/login")
    @guard_rule(f"{LOGIN_LIMIT}/minute")
    async def login() -> dict[str, str]:
        return {"login": "form"}

    return app


def command(env: dict[str, str], *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, [*args, "--json"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    found: dict[str, Any] = json.loads(result.output)
    return found


def test_the_command_shows_and_resets_the_windows_an_adapter_counts_in(redis_url: str) -> None:
    prefix = f"w{uuid.uuid4().hex[:8]}:"
    config = SecurityConfig(redis_url=redis_url, redis_prefix=prefix)
    env = {"GUARD_CORE_REDIS_URL": redis_url, "GUARD_CORE_REDIS_PREFIX": prefix}
    guard = Guard(config)
    address = CLIENT[0]
    with TestClient(protected_app(guard), client=CLIENT) as client:
        assert [client.get("/login").status_code for _ in range(2)] == [200, 200]

        login = command(env, "ratelimit", "show", address, "--route", "/login", "--window", "60")
        assert login["endpoint"] == "/login|60s"
        assert login["hits"] == 2
        if "cluster" in redis_url:
            assert login["key"] == f"{prefix}rate_limit:{{rate:{address}:/login|60s}}"
        else:
            assert login["key"] == f"{prefix}rate_limit:rate:{address}:/login|60s"
        # the limits of every route count each request too, over rate_limit_window
        every = command(env, "ratelimit", "show", address, "--route", "*")
        assert every["endpoint"] == f"*|{round(config.rate_limit_window)}s"
        assert (every["hits"], every["limit"]) == (2, config.rate_limit)

        # the limit as the rule gives it sets the window too
        ruled = command(env, "ratelimit", "show", address, "--route", "/login", "--limit", "3/min")
        assert (ruled["hits"], ruled["limit"], ruled["remaining"]) == (2, LOGIN_LIMIT, 1)
        assert ruled["endpoint"] == "/login|60s"
        cleared = command(env, "ratelimit", "reset", address, "--route", "/login", "--window", "60")
        assert cleared["cleared"] == 2
        again = [client.get("/login").status_code for _ in range(LOGIN_LIMIT + 1)]
        assert again == [200] * LOGIN_LIMIT + [429]  # a fresh window: the reset reached it
        login = command(env, "ratelimit", "show", address, "--route", "/login", "--window", "60")
        assert login["hits"] == LOGIN_LIMIT
    # an IPv6 client is counted per /64 network (CheckSettings.ipv6_prefix): so is its window
    with TestClient(protected_app(guard), client=("2001:db8::5", 40000)) as client:
        assert [client.get("/login").status_code for _ in range(2)] == [200, 200]
        v6 = ("--route", "/login", "--limit", "3/minute")
        shown = command(env, "ratelimit", "show", "2001:db8::77", *v6)  # same /64
        assert shown["hits"] == 2
        assert "/64:/login|60s" in shown["key"]
        assert command(env, "ratelimit", "reset", "2001:db8::5", *v6)["cleared"] == 2
        assert client.get("/login").status_code == 200
        assert client.portal is not None
        client.portal.call(guard.redis.delete_pattern, "*")


def test_a_route_window_must_be_whole_seconds_and_not_beside_an_endpoint(
    redis_server: Any,
) -> None:
    env = {"GUARD_CORE_REDIS_URL": redis_server.url}
    runner = CliRunner()
    half = runner.invoke(
        cli, ["ratelimit", "show", "192.0.2.1", "--route", "/x", "--window", "1.5"], env=env
    )
    assert half.exit_code == 1
    assert "whole seconds" in half.output
    both = runner.invoke(
        cli, ["ratelimit", "show", "192.0.2.1", "--route", "/x", "--endpoint", "/x"], env=env
    )
    assert both.exit_code == 1
    assert "not both" in both.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--window", "0"), "--window must be between"),
        (("--window", "nan"), "--window must be between"),
        (("--limit", "0"), "--limit must be at least 1"),
        (("--limit", "5/minute;9/hour"), "--limit takes one limit"),
        (("--limit", "often"), "not a limit"),
        (("--limit", "5/minute", "--window", "30"), "is not the window of"),
    ],
)
def test_a_limit_or_window_no_application_can_have_is_one_line_and_exit_2(
    redis_server: Any, args: tuple[str, ...], message: str
) -> None:
    env = {"GUARD_CORE_REDIS_URL": redis_server.url}
    for command_name in ("show", "reset"):
        result = CliRunner().invoke(cli, ["ratelimit", command_name, "192.0.2.1", *args], env=env)
        assert result.exit_code == 2, result.output
        assert result.output.startswith("guard-core: error: ") and message in result.output
        assert len(result.output.strip().splitlines()) == 1
