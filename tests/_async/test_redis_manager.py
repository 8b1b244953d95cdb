"""RedisManager behaviour, written once for the async face and generated for the sync face."""

from __future__ import annotations

import logging
import socket
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from redis.asyncio import Redis

from guard_core._shared.concurrency import async_sleep
from guard_core.exceptions import GuardRedisError, RedisUnavailableError
from guard_core.handlers import redis_handler as redis_handler_module
from guard_core.handlers.redis_handler import RedisManager
from guard_core.models import SecurityConfig
from guard_core.testing import LocalRedisServer, free_port
from tests.support.agents import AsyncRecordingAgent
from tests.support.backends import Backend, StateEnv
from tests.support.workers import ASYNC_WORKERS, run_async_workers

pytestmark = pytest.mark.anyio

SECRET = "s3cret-Pa55word"


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A listening socket that records whether anything connected to it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    yield sock
    sock.close()


def accepted_connection(sock: socket.socket) -> bool:
    try:
        conn, _ = sock.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


# -- construction and lifecycle ------------------------------------------------------------


async def test_each_construction_is_a_new_manager_and_module_attribute_is_the_class() -> None:
    config = SecurityConfig(enable_redis=False)
    first, second = RedisManager(config), RedisManager(config)
    assert first is not second
    assert first.config is config
    assert redis_handler_module.redis_handler is RedisManager
    assert RedisManager.agent_handler is None
    assert first.logger.name == "guard_core.redis"


async def test_initialize_connects_pings_and_emits_event(
    make_manager: Callable[..., RedisManager], backend: Backend
) -> None:
    manager = make_manager()
    agent = AsyncRecordingAgent()
    await manager.initialize_agent(agent)
    await manager.initialize()
    assert agent.actions() == ["connection_established"]
    event = agent.events[0]
    assert event.event_type == "redis_connection"
    assert event.metadata["redis_url"] == backend.url
    async with manager.get_connection() as conn:
        assert await conn.ping() is True
        await conn.set("probe", "value")
        assert await conn.get("probe") == "value"  # decode_responses=True


async def test_initialize_twice_keeps_one_client(manager: RedisManager) -> None:
    async with manager.get_connection() as first:
        pass
    await manager.initialize()
    async with manager.get_connection() as second:
        pass
    assert first is second


async def test_get_connection_initializes_on_first_use(
    make_manager: Callable[..., RedisManager],
) -> None:
    manager = make_manager()
    agent = AsyncRecordingAgent()
    await manager.initialize_agent(agent)
    async with manager.get_connection() as conn:
        assert await conn.ping() is True
    assert agent.actions() == ["connection_established"]


async def test_close_emits_event_and_later_operations_raise_503(manager: RedisManager) -> None:
    agent = AsyncRecordingAgent()
    await manager.initialize_agent(agent)
    await manager.close()
    assert agent.actions() == ["connection_closed"]
    with pytest.raises(GuardRedisError) as raised:
        async with manager.get_connection():
            pass
    assert raised.value.status_code == 503
    assert raised.value.detail == "Redis connection closed"
    assert agent.events[-1].metadata["error_type"] == "connection_closed"
    for call in (
        lambda: manager.get_key("ns", "k"),
        lambda: manager.set_key("ns", "k", "v"),
        lambda: manager.incr("ns", "k"),
        lambda: manager.exists("ns", "k"),
        lambda: manager.delete("ns", "k"),
        lambda: manager.keys("*"),
        lambda: manager.delete_pattern("*"),
        lambda: manager.get_many("ns", ["k"]),
        lambda: manager.set_many("ns", {"k": ("v", None)}),
    ):
        sent = len(agent.events)
        with pytest.raises(GuardRedisError) as raised:
            await call()
        assert (raised.value.status_code, raised.value.detail) == (503, "Redis connection closed")
        # one event, saying what happened (not a generic "operation failed")
        assert [e.metadata["error_type"] for e in agent.events[sent:]] == ["connection_closed"]
    await manager.initialize()  # closed stays closed
    with pytest.raises(GuardRedisError, match="Redis connection closed"):
        await manager.get_key("ns", "k")


# -- key operations ------------------------------------------------------------------------


async def test_set_and_get_without_ttl(manager: RedisManager, backend: Backend) -> None:
    assert await manager.get_key("things", "a") is None
    assert await manager.set_key("things", "a", "1") is True
    assert await manager.get_key("things", "a") == "1"
    assert backend.inspect.get(backend.key("things", "a")) == "1"
    assert backend.inspect.ttl(backend.key("things", "a")) == -1


async def test_set_with_ttl_expires_on_the_server(manager: RedisManager, backend: Backend) -> None:
    assert await manager.set_key("things", "b", 42, ttl=30) is True
    assert await manager.get_key("things", "b") == "42"
    assert 0 < backend.inspect.ttl(backend.key("things", "b")) <= 30
    assert await manager.set_key("things", "b", "again") is True  # a plain set drops the TTL
    assert backend.inspect.ttl(backend.key("things", "b")) == -1


async def test_incr_counts_and_sets_ttl_atomically(manager: RedisManager, backend: Backend) -> None:
    assert await manager.incr("counter", "hits") == 1
    assert backend.inspect.ttl(backend.key("counter", "hits")) == -1
    assert await manager.incr("counter", "hits", ttl=60) == 2
    assert 0 < backend.inspect.ttl(backend.key("counter", "hits")) <= 60
    assert await manager.incr("counter", "hits") == 3
    assert backend.inspect.get(backend.key("counter", "hits")) == "3"


async def test_set_many_and_get_many(manager: RedisManager, backend: Backend) -> None:
    entries = {"a": ("1", 30), "b": (2, None), "c:d": (b"3", 60)}
    assert await manager.set_many("bulk", entries) is True
    assert await manager.get_many("bulk", ["a", "b", "c:d", "absent"]) == ["1", "2", "3", None]
    assert 0 < backend.inspect.ttl(backend.key("bulk", "a")) <= 30
    assert backend.inspect.ttl(backend.key("bulk", "b")) == -1
    assert await manager.set_many("bulk", {}) is True
    with pytest.raises(ValueError):
        await manager.set_many("bulk", {"x": ("1", 30), "y": ("2", 0)})
    assert backend.inspect.exists(backend.key("bulk", "x")) == 0  # nothing written


async def test_exists_and_delete_return_types(manager: RedisManager) -> None:
    assert await manager.exists("ns", "k") is False
    await manager.set_key("ns", "k", "v")
    assert await manager.exists("ns", "k") is True
    assert await manager.delete("ns", "k") == 1
    assert await manager.delete("ns", "k") == 0
    assert await manager.exists("ns", "k") is False


async def test_keys_returns_full_names_as_str(manager: RedisManager, backend: Backend) -> None:
    await manager.set_key("banned_ips", "10.0.0.1", "1")
    await manager.set_key("banned_ips", "10.0.0.2", "1")
    await manager.set_key("other", "x", "1")
    backend.inspect.set("foreign:banned_ips:10.0.0.3", "1")
    found = await manager.keys("banned_ips:*")
    assert found is not None
    assert sorted(found) == [
        backend.key("banned_ips", "10.0.0.1"),
        backend.key("banned_ips", "10.0.0.2"),
    ]
    assert [manager.key_part("banned_ips", key) for key in sorted(found)] == [
        "10.0.0.1",
        "10.0.0.2",
    ]
    assert all(type(key) is str for key in found)
    assert await manager.keys("nothing:*") == []


async def test_delete_pattern_counts_and_spares_others(
    manager: RedisManager, backend: Backend
) -> None:
    pipe = backend.inspect.pipeline()
    for index in range(1234):  # more than one SCAN step and one UNLINK batch
        pipe.set(backend.key("bulk", str(index)), "1")
    pipe.set(backend.key("keep", "1"), "1")
    pipe.set("elsewhere:bulk:1", "1")
    pipe.execute()
    assert await manager.delete_pattern("bulk:*") == 1234
    assert await manager.keys("bulk:*") == []
    assert backend.inspect.exists(backend.key("keep", "1"), "elsewhere:bulk:1") == 2
    assert await manager.delete_pattern("bulk:*") == 0


async def test_seed_key_layout_examples(manager: RedisManager, backend: Backend) -> None:
    table = [
        ("banned_ips", "192.168.1.1", "guard_core:banned_ips:192.168.1.1"),
        ("rate_limit", "rate:10.0.0.1", "guard_core:rate_limit:rate:10.0.0.1"),
        ("cloud_ranges", "AWS", "guard_core:cloud_ranges:AWS"),
        ("patterns", "custom", "guard_core:patterns:custom"),
        ("security_headers", "csp_config", "guard_core:security_headers:csp_config"),
        ("behavior_usage", "login:1700000000", "guard_core:behavior_usage:login:1700000000"),
    ]
    if backend.cluster:  # the documented Cluster layout: the key part is the hash tag
        table = [(ns, key, f"guard_core:{ns}:{{{key}}}") for ns, key, _ in table]
    for namespace, key, full_key in table:
        await manager.set_key(namespace, key, "v")
        assert backend.inspect.get(full_key) == "v"
    assert sorted(await manager.keys("*") or []) == sorted(row[2] for row in table)


@pytest.mark.parametrize(
    ("mine", "theirs"),
    [("a*:", "ab:"), ("a?:", "ab:"), ("[ab]:", "a:"), ("x\\:", "x\\\\:"), ("p]:", "p:")],
)
async def test_glob_characters_in_prefix_never_reach_another_app(
    make_manager: Callable[..., RedisManager], backend: Backend, mine: str, theirs: str
) -> None:
    ours = make_manager(redis_prefix=mine)
    other = make_manager(redis_prefix=theirs)
    await ours.set_key("ns", "k", "ours")
    await other.set_key("ns", "k", "theirs")
    await other.set_key("ns", "k2", "theirs")
    assert await ours.keys("*") == [backend.key("ns", "k", prefix=mine)]
    assert await ours.delete_pattern("*") == 1
    assert sorted(await other.keys("*") or []) == sorted(
        [backend.key("ns", "k", prefix=theirs), backend.key("ns", "k2", prefix=theirs)]
    )
    assert backend.inspect.get(backend.key("ns", "k", prefix=theirs)) == "theirs"


async def test_nested_prefixes_share_keys_as_the_readme_warns(
    make_manager: Callable[..., RedisManager], backend: Backend
) -> None:
    """`myapp:` and `myapp:staging:` are not isolated: the layout makes the second's keys
    keys of the first (the README's warning). Sibling prefixes are."""
    outer = make_manager(redis_prefix="myapp:")
    nested = make_manager(redis_prefix="myapp:staging:")
    sibling = make_manager(redis_prefix="myapp-staging:")
    await nested.set_key("banned_ips", "1.2.3.4", "1")
    await sibling.set_key("banned_ips", "1.2.3.4", "1")
    nested_key = backend.key("banned_ips", "1.2.3.4", prefix="myapp:staging:")
    assert await outer.keys("*") == [nested_key]
    if backend.name != "cluster":  # the hash tag keeps other key parts apart in a Cluster
        assert await outer.get_key("staging", "banned_ips:1.2.3.4") == "1"
    assert await outer.delete_pattern("*") == 1
    assert await nested.get_key("banned_ips", "1.2.3.4") is None
    assert await sibling.get_key("banned_ips", "1.2.3.4") == "1"


# -- disabled mode -------------------------------------------------------------------------


async def test_disabled_mode_returns_none_without_connecting(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    built: list[object] = []

    def factory(config: SecurityConfig) -> Any:
        built.append(config)
        raise AssertionError("disabled manager must not build a client")

    manager = RedisManager(
        SecurityConfig(enable_redis=False, redis_url=f"redis://127.0.0.1:{port}"),
        client_factory=factory,
    )
    await manager.initialize()
    assert await manager.get_key("ns", "k") is None
    assert await manager.set_key("ns", "k", "v", ttl=5) is None
    assert await manager.incr("ns", "k", ttl=5) is None
    assert await manager.exists("ns", "k") is None
    assert await manager.delete("ns", "k") is None
    assert await manager.keys("*") is None
    assert await manager.delete_pattern("*") is None
    assert await manager.safe_operation(Redis.ping) is None
    assert await manager.set_many("ns", {"k": ("v", 5)}) is None
    assert await manager.get_many("ns", ["k"]) is None
    await manager.close()
    assert built == []
    assert not accepted_connection(listener)


# -- failures ------------------------------------------------------------------------------


async def test_unreachable_url_raises_503_with_events() -> None:
    manager = RedisManager(
        SecurityConfig(redis_url=f"redis://127.0.0.1:{free_port()}", redis_connect_timeout=0.5)
    )
    agent = AsyncRecordingAgent()
    await manager.initialize_agent(agent)
    with pytest.raises(GuardRedisError) as raised:
        await manager.initialize()
    assert raised.value.status_code == 503
    assert agent.actions() == ["circuit_opened", "connection_failed"]
    assert {event.event_type for event in agent.events} == {"redis_error"}
    # the breaker is open: later calls fail fast, with no event per call
    with pytest.raises(RedisUnavailableError) as fast:
        await manager.get_key("ns", "k")
    assert fast.value.status_code == 503
    assert isinstance(fast.value, GuardRedisError)
    assert agent.actions() == ["circuit_opened", "connection_failed"]
    assert manager.breaker_snapshot()["state"] == "open"
    await manager.close()


async def test_safe_operation_passes_arguments_and_wraps_failures(manager: RedisManager) -> None:
    async def store(conn: Redis, key: str, *, value: str) -> Any:
        await conn.set(key, value)
        return await conn.get(key)

    assert await manager.safe_operation(store, "raw", value="v") == "v"

    async def broken(conn: Redis) -> None:
        raise ValueError("boom")

    agent = AsyncRecordingAgent()
    await manager.initialize_agent(agent)
    with pytest.raises(GuardRedisError) as raised:
        await manager.safe_operation(broken)
    assert raised.value.status_code == 503
    assert isinstance(raised.value.__cause__, ValueError)
    assert agent.events[-1].action_taken == "safe_operation_failed"
    assert agent.events[-1].metadata["function_name"] == "broken"


async def test_server_errors_are_wrapped(manager: RedisManager, backend: Backend) -> None:
    backend.inspect.rpush(backend.key("ns", "list"), "a")
    with pytest.raises(GuardRedisError) as raised:
        await manager.get_key("ns", "list")  # WRONGTYPE
    assert raised.value.status_code == 503
    with pytest.raises(GuardRedisError):
        await manager.incr("ns", "list")


async def test_connection_errors_inside_get_connection_become_503(manager: RedisManager) -> None:
    agent = AsyncRecordingAgent()
    await manager.initialize_agent(agent)
    with pytest.raises(GuardRedisError) as raised:
        async with manager.get_connection():
            raise ConnectionError("link down")
    assert raised.value.status_code == 503
    assert agent.events[-1].action_taken == "operation_failed"


async def test_recovers_by_itself_and_warns_once_per_state_change(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    config = SecurityConfig(redis_url=f"redis://127.0.0.1:{port}", redis_breaker_base_delay=0.05)
    manager = RedisManager(config)
    caplog.set_level(logging.DEBUG, logger="guard_core.redis")
    for _ in range(5):
        with pytest.raises(GuardRedisError):
            await manager.set_key("ns", "k", "v")
    with LocalRedisServer(port=port):
        await async_sleep(0.06)  # one probe interval
        assert await manager.set_key("ns", "k", "v") is True
        assert await manager.get_key("ns", "k") == "v"
        await manager.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([w for w in warnings if w.startswith("Redis unavailable")]) == 1
    assert warnings.count("Redis available again") == 1


# -- events --------------------------------------------------------------------------------


async def test_control_characters_are_escaped_in_events_and_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An error text carrying CR/LF (say, a reply echoing client data) cannot write a forged
    line into the log or an event."""
    forged = "refused\r\nCRITICAL guard_core.guard: forged\x1b[0m"

    def factory(config: SecurityConfig) -> Any:
        raise ConnectionError(forged)

    manager = RedisManager(SecurityConfig(redis_url="redis://127.0.0.1:1"), client_factory=factory)
    agent = AsyncRecordingAgent()
    await manager.initialize_agent(agent)
    caplog.set_level(logging.DEBUG, logger="guard_core.redis")
    with pytest.raises(GuardRedisError):
        await manager.initialize()
    shown = "refused\\r\\nCRITICAL guard_core.guard: forged\\x1b[0m"
    texts = [event.reason for event in agent.events]
    texts += [v for event in agent.events for v in event.metadata.values() if isinstance(v, str)]
    texts += [record.getMessage() for record in caplog.records]
    assert any(shown in text for text in texts)
    assert sum(shown in record.getMessage() for record in caplog.records) >= 1
    for text in texts:
        assert text.isprintable(), text


async def test_failing_agent_never_breaks_an_operation(
    make_manager: Callable[..., RedisManager], caplog: pytest.LogCaptureFixture
) -> None:
    manager = make_manager()
    agent = AsyncRecordingAgent(fail=True)
    await manager.initialize_agent(agent)
    await manager.initialize()
    assert await manager.set_key("ns", "k", "v") is True
    assert await manager.get_key("ns", "k") == "v"
    await manager.close()
    assert agent.actions() == ["connection_established", "connection_closed"]
    rejected = [r for r in caplog.records if "Agent handler rejected" in r.getMessage()]
    assert len(rejected) == 1


# -- secrets -------------------------------------------------------------------------------


async def test_password_never_appears_in_logs_events_or_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"redis://operator:{SECRET}@127.0.0.1:{free_port()}/0"
    config = SecurityConfig(redis_url=url, redis_connect_timeout=0.5)
    manager = RedisManager(config)
    agent = AsyncRecordingAgent()
    await manager.initialize_agent(agent)
    with pytest.raises(GuardRedisError) as raised:
        await manager.initialize()
    with pytest.raises(GuardRedisError) as raised_again:
        await manager.get_key("ns", "k")
    await manager.close()
    assert agent.events
    texts = [repr(config), str(raised.value), str(raised_again.value), caplog.text]
    # what an application's logger.exception() would print: the whole chain of causes
    texts += ["".join(traceback.format_exception(e)) for e in (raised.value, raised_again.value)]
    texts += [repr(event) for event in agent.events]
    assert all(SECRET not in text for text in texts)
    assert agent.events[0].metadata["redis_url"].startswith("redis://***@127.0.0.1:")


async def test_password_is_masked_when_connection_succeeds(
    redis_server: LocalRedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"redis://default:{SECRET}@127.0.0.1:{redis_server.port}/0"
    manager = RedisManager(SecurityConfig(redis_url=url))
    agent = AsyncRecordingAgent()
    await manager.initialize_agent(agent)
    await manager.initialize()
    assert await manager.set_key("ns", "k", "v") is True
    await manager.close()
    assert agent.events[0].metadata["redis_url"] == f"redis://***@127.0.0.1:{redis_server.port}/0"
    assert SECRET not in caplog.text
    assert all(SECRET not in repr(event) for event in agent.events)


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda m: m.get_key("", "k"), ValueError),
        (lambda m: m.get_key("a:b", "k"), ValueError),
        (lambda m: m.get_key("ns", ""), ValueError),
        (lambda m: m.get_key(1, "k"), TypeError),
        (lambda m: m.exists("ns", None), TypeError),
        (lambda m: m.set_key("ns", "k", None), TypeError),
        (lambda m: m.set_key("ns", "k", True), TypeError),
        (lambda m: m.set_key("ns", "k", object()), TypeError),
        (lambda m: m.set_key("ns", "k", "v", ttl=0), ValueError),
        (lambda m: m.set_key("ns", "k", "v", ttl=-5), ValueError),
        (lambda m: m.set_key("ns", "k", "v", ttl=1.5), TypeError),
        (lambda m: m.incr("ns", "k", ttl=True), TypeError),
        (lambda m: m.keys(b"*"), TypeError),
        (lambda m: m.delete_pattern("\ud800"), ValueError),
    ],
)
async def test_bad_input_raises_before_touching_redis(
    manager: RedisManager, backend: Backend, call: Callable[[RedisManager], Any], error: type
) -> None:
    backend.inspect.set("canary", "alive")
    with pytest.raises(error):
        await call(manager)
    assert backend.inspect.keys("*") == ["canary"]


# -- concurrency ---------------------------------------------------------------------------


async def test_many_concurrent_callers_share_one_manager(
    manager: RedisManager, backend: Backend
) -> None:
    async def work(index: int) -> None:
        assert await manager.incr("shared", "counter") is not None
        assert await manager.set_key("own", str(index), f"value-{index}", ttl=60) is True
        assert await manager.get_key("own", str(index)) == f"value-{index}"

    await run_async_workers(ASYNC_WORKERS, work)
    assert backend.inspect.get(backend.key("shared", "counter")) == str(ASYNC_WORKERS)
    assert len(await manager.keys("own:*") or []) == ASYNC_WORKERS


# -- recovery bookkeeping ------------------------------------------------------------------


async def test_counts_recoveries_and_restarts(
    private_server: LocalRedisServer, private_env: StateEnv
) -> None:
    manager = private_env.redis
    assert (manager.recoveries, manager.restarts) == (0, 0)
    assert await manager.set_key("ns", "k", "v") is True
    private_server.stop()
    private_server.start()  # same port, empty: a new server process
    assert await manager.get_key("ns", "k") is None  # the dropped connection was retried
    assert manager.restarts == 1
    private_server.stop()
    with pytest.raises(GuardRedisError):
        await manager.get_key("ns", "k")
    assert manager.available is False
    private_server.start()
    assert await manager.set_key("ns", "k", "again") is True
    assert manager.available is True
    assert (manager.recoveries, manager.restarts) == (1, 2)


async def test_concurrent_first_use_makes_one_connection_attempt() -> None:
    attempts: list[SecurityConfig] = []

    def counting_factory(config: SecurityConfig) -> Redis:
        attempts.append(config)
        return Redis.from_url(config.redis_url or "", socket_connect_timeout=0.3)

    config = SecurityConfig(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    manager = RedisManager(config, client_factory=counting_factory)
    failures: list[int] = []

    async def call(index: int) -> None:
        with pytest.raises(GuardRedisError) as raised:
            await manager.get_key("ns", str(index))
        failures.append(raised.value.status_code)

    await run_async_workers(ASYNC_WORKERS, call)
    assert failures == [503] * ASYNC_WORKERS
    assert len(attempts) == 1  # the others failed fast instead of queueing their own attempt
    await manager.close()
