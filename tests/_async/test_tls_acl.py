"""`rediss://` with certificates made at test time, and ACL users, on a real redis-server."""

from __future__ import annotations

import hashlib
import logging
import socket
import traceback
from collections.abc import AsyncIterator, Callable, Generator
from typing import Any
from urllib.parse import quote

import pytest
import redis
from redis.asyncio import Redis
from redis.asyncio.connection import Connection, SSLConnection
from redis.exceptions import AuthenticationError, NoPermissionError

from guard_core._shared.redaction import redact_url
from guard_core._shared.storage.lua_scripts import SLIDING_WINDOW
from guard_core.connection.client import build_client
from guard_core.exceptions import GuardRedisError
from guard_core.handlers.redis_handler import RedisManager
from guard_core.models import SecurityConfig
from guard_core.testing import LocalRedisServer, ServerTLS
from tests.support.agents import AsyncRecordingAgent
from tests.support.pki import TestPKI, make_test_pki

pytestmark = pytest.mark.anyio

#: Characters that need percent-encoding in a URL, so both spellings are looked for.
PASSWORD = "Tls&Acl/pa55:w@rd%"
WRONG_PASSWORD = "Wr0ng/pa55:w@rd%"
ADMIN_PASSWORD = "adm1n-pa55word"
#: What the manager sends, and what its Lua scripts call, and nothing more.
GUARD_COMMANDS = (
    "ping", "get", "mget", "set", "incr", "incrby", "expire", "multi", "exec", "exists",
    "del", "unlink", "scan", "evalsha", "script|load",
    "time", "zremrangebyscore", "zcard", "zadd", "zremrangebyrank", "pexpire", "zrange",
)  # fmt: skip


def _hashed(password: str) -> str:
    # the password itself never appears on the server's command line
    return "#" + hashlib.sha256(password.encode()).hexdigest()


ACL_ARGS = (
    "--user", "default", "off",
    "--user", "admin", "on", _hashed(ADMIN_PASSWORD), "~*", "&*", "+@all",
    "--user", "guard", "on", _hashed(PASSWORD), "resetkeys", "~guard_core:*",
    "resetchannels", "-@all", *(f"+{command}" for command in GUARD_COMMANDS),
)  # fmt: skip


def with_user(url: str, user: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{user}:{quote(password, safe='')}@{rest}"


def texts_of(exc: BaseException) -> list[str]:
    """The formatted traceback, and str/repr of every exception in the cause chain."""
    texts = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts += [str(current), repr(current)]
        current = current.__cause__ or current.__context__
    return texts


def chain(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def log_texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    texts = [caplog.text]
    for record in caplog.records:
        texts += [record.getMessage(), repr(record.args), record.exc_text or ""]
    return texts


def leaks(texts: list[str], password: str) -> list[str]:
    spellings = {password, quote(password, safe="")}
    return [text for text in texts if any(spelling in text for spelling in spellings)]


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    """A throwaway CA with server and client certificates, made with openssl."""
    return make_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_acl_server(pki: TestPKI) -> Generator[LocalRedisServer, None, None]:
    """TLS only (no plain port), default user off, `guard` confined to `guard_core:*`."""
    tls = ServerTLS(ca_file=pki.ca_file, cert_file=pki.server_cert, key_file=pki.server_key)
    with LocalRedisServer(extra_args=ACL_ARGS, tls=tls) as server:
        yield server


@pytest.fixture(scope="module")
def mtls_server(pki: TestPKI) -> Generator[LocalRedisServer, None, None]:
    """TLS only, demanding a client certificate signed by the test CA."""
    tls = ServerTLS(
        ca_file=pki.ca_file,
        cert_file=pki.server_cert,
        key_file=pki.server_key,
        client_cert_file=pki.client_cert,
        client_key_file=pki.client_key,
    )
    with LocalRedisServer(tls=tls) as server:
        yield server


@pytest.fixture
def admin(tls_acl_server: LocalRedisServer) -> Generator[redis.Redis, None, None]:
    """A sync client with every right on the TLS/ACL server (flushed before the test)."""
    client = redis.Redis.from_url(
        with_user(tls_acl_server.url, "admin", ADMIN_PASSWORD), decode_responses=True
    )
    client.flushall()
    client.script_flush()
    yield client
    client.close()


@pytest.fixture
def guard_url(tls_acl_server: LocalRedisServer) -> str:
    return with_user(tls_acl_server.url, "guard", PASSWORD)


@pytest.fixture
async def make() -> AsyncIterator[Callable[..., RedisManager]]:
    """Build managers (config fields as keywords); all closed afterwards."""
    made: list[RedisManager] = []

    def build(url: str, **fields: Any) -> RedisManager:
        fields.setdefault("redis_connect_timeout", 0.5)
        manager = RedisManager(SecurityConfig(redis_url=url, **fields))
        made.append(manager)
        return manager

    yield build
    for manager in made:
        await manager.close()


async def failed_initialize(manager: RedisManager) -> GuardRedisError:
    with pytest.raises(GuardRedisError) as raised:
        await manager.initialize()
    assert raised.value.status_code == 503
    return raised.value


# -- TLS -----------------------------------------------------------------------------------


async def test_key_operations_over_tls_as_an_acl_user(
    make: Callable[..., RedisManager], admin: redis.Redis, guard_url: str
) -> None:
    manager = make(guard_url)
    agent = AsyncRecordingAgent()
    await manager.initialize_agent(agent)
    await manager.initialize()
    assert agent.actions() == ["connection_established"]
    assert agent.events[0].metadata["redis_url"] == redact_url(guard_url)
    assert agent.events[0].metadata["redis_url"].startswith("rediss://***@127.0.0.1:")

    assert await manager.set_key("things", "a", "1") is True
    assert await manager.get_key("things", "a") == "1"
    assert await manager.set_key("things", "b", "2", ttl=30) is True
    assert 0 < admin.ttl("guard_core:things:b") <= 30
    assert await manager.get_many("things", ["a", "b", "c"]) == ["1", "2", None]
    assert await manager.incr("counter", "hits", ttl=60) == 1
    assert await manager.incr("counter", "hits") == 2
    assert await manager.exists("things", "a") is True
    assert sorted(await manager.keys("things:*") or []) == [
        "guard_core:things:a",
        "guard_core:things:b",
    ]
    assert await manager.delete("things", "a") == 1
    assert admin.get("guard_core:counter:hits") == "2"

    admin.mset({f"guard_core:bulk:{index}": "1" for index in range(600)})  # > 1 UNLINK batch
    admin.set("elsewhere:bulk:1", "1")
    assert await manager.delete_pattern("bulk:*") == 600
    assert await manager.keys("bulk:*") == []
    assert admin.exists("elsewhere:bulk:1", "guard_core:things:b") == 2
    assert manager.available


async def test_server_speaks_tls_only(
    make: Callable[..., RedisManager], tls_acl_server: LocalRedisServer
) -> None:
    plain = f"redis://guard:{quote(PASSWORD, safe='')}@127.0.0.1:{tls_acl_server.port}/0"
    await failed_initialize(make(plain, redis_retries=0))


async def test_run_script_loads_and_runs_under_acl(
    make: Callable[..., RedisManager], admin: redis.Redis, guard_url: str
) -> None:
    manager = make(guard_url)
    assert admin.script_exists(SLIDING_WINDOW.sha) == [False]
    first = await manager.run_script(
        SLIDING_WINDOW, [("rate_limit", "10.0.0.1")], [5, 60000, "a", 0]
    )
    second = await manager.run_script(
        SLIDING_WINDOW, [("rate_limit", "10.0.0.1")], [5, 60000, "b", 0]
    )
    assert first[:2] == [1, 1]
    assert second[:2] == [1, 2]
    assert admin.script_exists(SLIDING_WINDOW.sha) == [True]  # loaded on NOSCRIPT
    assert admin.zcard("guard_core:rate_limit:10.0.0.1") == 2


async def test_untrusted_ca_fails_with_503(
    make: Callable[..., RedisManager], tls_acl_server: LocalRedisServer, pki: TestPKI
) -> None:
    url = with_user(tls_acl_server.url, "guard", PASSWORD).replace(
        quote(pki.ca_file, safe=""), quote(pki.other_ca_file, safe="")
    )
    assert quote(pki.other_ca_file, safe="") in url
    error = await failed_initialize(make(url))
    assert any("CERTIFICATE_VERIFY_FAILED" in text for text in texts_of(error))


async def test_certificate_for_another_host_fails_with_503(
    make: Callable[..., RedisManager], pki: TestPKI
) -> None:
    tls = ServerTLS(ca_file=pki.ca_file, cert_file=pki.wrong_host_cert, key_file=pki.wrong_host_key)
    with LocalRedisServer(tls=tls) as server:
        error = await failed_initialize(make(server.url))
    assert any("IP address mismatch" in text for text in texts_of(error))


async def test_tls_handshake_that_never_completes_fails_after_the_timeout(
    make: Callable[..., RedisManager], pki: TestPKI
) -> None:
    # a listener that never accepts: TCP connects, the TLS handshake gets no answer
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={quote(pki.ca_file, safe='')}"
        manager = make(url, redis_connect_timeout=0.2, redis_socket_timeout=0.2, redis_retries=0)
        error = await failed_initialize(manager)
    assert any("Timeout" in type(exc).__name__ for exc in chain(error))


async def test_mutual_tls_needs_the_client_certificate(
    make: Callable[..., RedisManager], mtls_server: LocalRedisServer, pki: TestPKI
) -> None:
    without_cert = f"rediss://127.0.0.1:{mtls_server.port}/0?ssl_ca_certs={quote(pki.ca_file)}"
    await failed_initialize(make(without_cert, redis_retries=0))
    assert "ssl_certfile=" in mtls_server.url
    manager = make(mtls_server.url)
    await manager.initialize()
    assert await manager.set_key("mtls", "k", "v") is True
    assert await manager.get_key("mtls", "k") == "v"
    assert await manager.delete_pattern("mtls:*") == 1


async def test_build_client_verifies_certificates_for_rediss_only(pki: TestPKI) -> None:
    secure = build_client(
        SecurityConfig(redis_url=f"rediss://h:6380/0?ssl_ca_certs={quote(pki.ca_file)}")
    )
    pool = secure.connection_pool
    assert pool.connection_class is SSLConnection
    assert pool.connection_kwargs["ssl_cert_reqs"] == "required"
    assert pool.connection_kwargs["ssl_check_hostname"] is True
    assert pool.connection_kwargs["ssl_ca_certs"] == pki.ca_file
    plain = build_client(SecurityConfig(redis_url="redis://h:6379/0"))
    assert plain.connection_pool.connection_class is Connection
    assert not any(name.startswith("ssl") for name in plain.connection_pool.connection_kwargs)
    await secure.aclose()
    await plain.aclose()


# -- ACL -----------------------------------------------------------------------------------


async def test_acl_confines_the_user_to_its_prefix_and_commands(
    make: Callable[..., RedisManager], admin: redis.Redis, guard_url: str
) -> None:
    manager = make(guard_url)
    assert await manager.set_key("ns", "k", "mine") is True
    outsider = make(guard_url, redis_prefix="other:")
    with pytest.raises(GuardRedisError) as raised:
        await outsider.set_key("ns", "k", "v")
    assert raised.value.status_code == 503
    assert any(isinstance(exc, NoPermissionError) for exc in chain(raised.value))
    with pytest.raises(GuardRedisError) as raised:
        await manager.safe_operation(Redis.flushall)
    assert any(isinstance(exc, NoPermissionError) for exc in chain(raised.value))
    assert admin.exists("other:ns:k") == 0
    assert admin.get("guard_core:ns:k") == "mine"
    assert manager.available and outsider.available  # an error reply is not an outage


async def test_wrong_password_fails_with_503_and_is_never_shown(
    make: Callable[..., RedisManager],
    tls_acl_server: LocalRedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = with_user(tls_acl_server.url, "guard", WRONG_PASSWORD)
    manager = make(url)
    agent = AsyncRecordingAgent()
    await manager.initialize_agent(agent)
    error = await failed_initialize(manager)
    assert any(isinstance(exc, AuthenticationError) for exc in chain(error))
    with pytest.raises(GuardRedisError) as again:
        await manager.get_key("ns", "k")
    assert again.value.status_code == 503
    assert await manager.ping() is False
    await manager.close()

    assert agent.actions()[:2] == ["circuit_opened", "connection_failed"]
    texts = [repr(manager.config), *texts_of(error), *texts_of(again.value)]
    texts += log_texts(caplog) + [repr(event) for event in agent.events]
    assert any("invalid username-password pair" in text for text in texts)
    assert leaks(texts, WRONG_PASSWORD) == []


async def test_right_password_is_never_shown(
    make: Callable[..., RedisManager],
    guard_url: str,
    admin: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    manager = make(guard_url)
    agent = AsyncRecordingAgent()
    await manager.initialize_agent(agent)
    await manager.initialize()
    assert await manager.set_key("ns", "k", "v") is True
    with pytest.raises(GuardRedisError) as denied:  # logged and reported as an event
        await manager.safe_operation(Redis.flushall)
    await manager.close()
    assert agent.actions() == [
        "connection_established",
        "safe_operation_failed",
        "connection_closed",
    ]
    texts = [repr(manager.config), *texts_of(denied.value)]
    texts += log_texts(caplog) + [repr(event) for event in agent.events]
    assert any("flushall" in text for text in log_texts(caplog))
    assert leaks(texts, PASSWORD) == []
