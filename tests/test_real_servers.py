"""The example apps under real servers sharing one real redis-server.

Two uvicorn processes (async face) and two `gunicorn --preload -w 2 --threads 4 -k gthread`
processes (sync face), plus the Django example under gunicorn, on free 127.0.0.1 ports:
a ban and a rate limit made through one instance are enforced by the others. The examples
trust 127.0.0.1 as their reverse proxy, so each test client stands behind its own
`X-Forwarded-For` address.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import httpx
import pytest

from guard_core.testing import LocalRedisServer
from tests.support.servers import gunicorn_args, running_server, uvicorn_args

_addresses = itertools.count(1)


def client_address() -> dict[str, str]:
    """An X-Forwarded-For header for a client address no other test uses."""
    return {"X-Forwarded-For": f"198.51.100.{next(_addresses)}"}


@pytest.fixture(scope="module")
def shared_redis() -> Iterator[LocalRedisServer]:
    with LocalRedisServer() as server:
        yield server


def check_sharing(first: str, second: str) -> None:
    with httpx.Client(timeout=10.0) as http:
        # a rate limit reached through the first instance holds on the second
        login = client_address()
        assert [http.get(first + "/login", headers=login).status_code for _ in range(3)] == [
            200,
            200,
            200,
        ]
        limited = http.get(second + "/login", headers=login)
        assert limited.status_code == 429
        assert limited.headers["Retry-After"].isdigit()
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        assert limited.headers["RateLimit"].startswith('"3-per-60s";r=0;')

        # attack payloads through the first instance get the client banned; the second
        # refuses even its harmless requests
        attacker = client_address()
        payload = "/?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E"
        codes = [http.get(first + payload, headers=attacker).status_code for _ in range(6)]
        assert codes == [403] * 6
        banned = http.get(second + "/", headers=attacker)
        assert (banned.status_code, banned.json()) == (403, {"detail": "IP banned"})

        # someone else is served, with the security and rate-limit headers
        fine = http.get(second + "/", headers=client_address())
        assert fine.status_code == 200
        assert fine.headers["X-Content-Type-Options"] == "nosniff"
        assert "X-RateLimit-Remaining" in fine.headers


def test_two_uvicorn_instances_share_bans_and_limits(shared_redis: LocalRedisServer) -> None:
    env = {"REDIS_URL": shared_redis.url}
    app = "examples.fastapi_app:app"
    with (
        running_server(uvicorn_args, app, env) as first,
        running_server(uvicorn_args, app, env) as second,
    ):
        check_sharing(first, second)


def test_two_gunicorn_instances_share_bans_and_limits(shared_redis: LocalRedisServer) -> None:
    env = {"REDIS_URL": shared_redis.url}
    app = "examples.flask_app:app"
    with (
        running_server(gunicorn_args, app, env) as first,
        running_server(gunicorn_args, app, env) as second,
    ):
        check_sharing(first, second)


def test_django_under_gunicorn_and_fastapi_under_uvicorn_agree(
    shared_redis: LocalRedisServer,
) -> None:
    env = {"REDIS_URL": shared_redis.url}
    with (
        running_server(gunicorn_args, "examples.django_app:application", env) as django_url,
        running_server(uvicorn_args, "examples.fastapi_app:app", env) as fastapi_url,
    ):
        check_sharing(django_url, fastapi_url)
