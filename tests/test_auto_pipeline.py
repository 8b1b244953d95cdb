"""The async face's auto-pipeline on a real redis-server: round trips shared, each reply and
error to its own caller, cancellation and dropped connections costing the others nothing.

(The sync face sends each command at once; behaviour through the manager, the same in both
faces, is in tests/_async/test_auto_pipeline.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from guard_core._shared.connection.auto_pipeline import AsyncAutoPipeline
from guard_core._shared.connection.resp import pack
from guard_core._shared.connection.slots import AsyncSlots
from guard_core.exceptions import RedisUnavailableError
from guard_core.testing import LocalRedisServer

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client(redis_server: LocalRedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url, decode_responses=True)
    await client.flushdb()
    yield client
    await client.aclose()


class Counting(AsyncAutoPipeline):
    """Counts the writes (round trips) it makes, and their sizes."""

    writes = 0

    async def _send(self, trip: Any) -> None:
        self.writes += 1
        self.sizes = [*getattr(self, "sizes", []), len(trip.waiters) - trip.index]
        await super()._send(trip)


def pipeline_of(
    client: Redis, *, kept: int = 2, usable: bool = True, timeout: float = 5.0
) -> Counting:
    return Counting(client, AsyncSlots(10, 1.0), kept=kept, timeout=timeout, usable=lambda: usable)


async def test_pack_writes_what_redis_py_writes() -> None:
    from redis.asyncio.connection import Connection

    connection = Connection()
    for command in [
        ("GET", "k"),
        ("SET", "k", "vé", "EX", 5),
        ("EVALSHA", "ab", 1, "k", 1.5, 10**20, "x"),
        ("SET", "k", b"\x00\xff"),
    ]:
        assert pack(command) == b"".join(connection.pack_command(*command))
    with pytest.raises(Exception, match="Invalid input of type"):
        pack(("SET", "k", None))


async def test_concurrent_commands_share_round_trips_and_get_their_own_replies(
    client: Redis,
) -> None:
    await client.mset({f"k{i}": f"v{i}" for i in range(200)})
    pipeline = pipeline_of(client)
    replies = await asyncio.gather(
        *(pipeline.execute(("GET", f"k{i}"), fail_fast=True) for i in range(200))
    )
    assert replies == [f"v{i}" for i in range(200)]
    assert pipeline.writes <= 10, pipeline.writes  # 200 commands, a handful of round trips
    # a caller alone goes out at once, alone
    before = pipeline.writes
    assert await pipeline.execute(("GET", "k7"), fail_fast=True) == "v7"
    assert pipeline.writes == before + 1


async def test_waiting_commands_are_shared_evenly_between_the_kept_connections(
    client: Redis,
) -> None:
    await client.set("k", "v")
    pipeline = pipeline_of(client, kept=2)
    replies = await asyncio.gather(
        *(pipeline.execute(("GET", "k"), fail_fast=True) for _ in range(101))
    )
    assert replies == ["v"] * 101
    assert sum(pipeline.sizes) == 101
    # the first goes alone; no round trip takes the whole queue while the other connection
    # could take half of it
    assert pipeline.sizes[0] == 1
    assert max(pipeline.sizes) <= 51, pipeline.sizes
    assert len(pipeline.sizes) <= 10, pipeline.sizes


async def test_an_error_reply_fails_its_caller_only(client: Redis) -> None:
    await client.hset("a-hash", "field", "1")
    await client.set("plain", "value")
    pipeline = pipeline_of(client, kept=1)
    commands = [("GET", "plain")] * 5 + [("GET", "a-hash")] + [("GET", "plain")] * 5
    replies = await asyncio.gather(
        *(pipeline.execute(command, fail_fast=True) for command in commands),
        return_exceptions=True,
    )
    assert pipeline.writes == 2  # the first alone, then the ten that waited, together
    assert [type(reply) for reply in replies].count(ResponseError) == 1
    assert isinstance(replies[5], ResponseError) and "WRONGTYPE" in str(replies[5])
    assert replies[:5] + replies[6:] == ["value"] * 10


async def test_a_reader_cancelled_half_way_hands_the_round_trip_to_a_waiter(
    client: Redis,
) -> None:
    await client.set("x", "1")
    await client.set("y", "2")
    pipeline = pipeline_of(client, kept=1)
    first = asyncio.create_task(pipeline.execute(("BLPOP", "none", "0.2"), fail_fast=True))
    await asyncio.sleep(0.05)  # the first round trip is in flight: the next ones wait
    blocked = asyncio.create_task(pipeline.execute(("BLPOP", "empty", "0.3"), fail_fast=True))
    x = asyncio.create_task(pipeline.execute(("GET", "x"), fail_fast=True))
    y = asyncio.create_task(pipeline.execute(("GET", "y"), fail_fast=True))
    assert await first is None
    await asyncio.sleep(0.1)  # `blocked` leads the second round trip and waits for its reply
    assert pipeline.writes == 2
    blocked.cancel()
    with pytest.raises(asyncio.CancelledError):
        await blocked
    assert await x == "1"
    assert await y == "2"
    # the connection was kept, and the next command finds everything in order
    assert await pipeline.execute(("GET", "x"), fail_fast=True) == "1"


async def test_a_waiter_cancelled_before_its_round_trip_is_never_sent(client: Redis) -> None:
    pipeline = pipeline_of(client, kept=1)
    first = asyncio.create_task(pipeline.execute(("BLPOP", "none", "0.2"), fail_fast=True))
    await asyncio.sleep(0.05)
    dropped = asyncio.create_task(pipeline.execute(("SET", "dropped", "1"), fail_fast=True))
    kept = asyncio.create_task(pipeline.execute(("SET", "kept", "1"), fail_fast=True))
    await asyncio.sleep(0.01)
    dropped.cancel()
    assert await first is None
    assert await kept == "OK"
    with pytest.raises(asyncio.CancelledError):
        await dropped
    assert await client.exists("dropped") == 0
    assert await client.get("kept") == "1"


async def test_a_connection_dropped_by_the_server_is_replaced_and_the_commands_resent(
    client: Redis,
) -> None:
    await client.set("x", "1")
    pipeline = pipeline_of(client, kept=1)
    assert await pipeline.execute(("GET", "x"), fail_fast=True) == "1"
    untyped: Any = client
    killed = await untyped.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    assert int(killed) >= 1  # the pipeline's kept connection among them
    replies = await asyncio.gather(
        *(pipeline.execute(("GET", "x"), fail_fast=True) for _ in range(20))
    )
    assert replies == ["1"] * 20


async def test_waiters_admitted_before_redis_failed_fail_fast(client: Redis) -> None:
    state = {"usable": True}
    pipeline = Counting(
        client, AsyncSlots(10, 1.0), kept=1, timeout=5.0, usable=lambda: state["usable"]
    )
    await client.set("x", "1")
    first = asyncio.create_task(pipeline.execute(("BLPOP", "none", "0.1"), fail_fast=True))
    await asyncio.sleep(0.02)
    admitted = asyncio.create_task(pipeline.execute(("GET", "x"), fail_fast=True))
    probe = asyncio.create_task(pipeline.execute(("GET", "x"), fail_fast=False))
    await asyncio.sleep(0.01)
    state["usable"] = False  # Redis failed meanwhile (the breaker opened)
    assert await first is None
    with pytest.raises(RedisUnavailableError):
        await admitted
    assert await probe == "1"  # a probe goes through


async def test_a_hung_round_trip_fails_every_command_in_it_after_one_timeout(
    client: Redis,
) -> None:
    pipeline = pipeline_of(client, kept=1, timeout=0.2)
    first = asyncio.create_task(pipeline.execute(("BLPOP", "none", "0.1"), fail_fast=True))
    await asyncio.sleep(0.02)
    # one waits far longer than the timeout; the GET shares its round trip
    slow = asyncio.create_task(pipeline.execute(("BLPOP", "none", "2"), fail_fast=True))
    other = asyncio.create_task(pipeline.execute(("GET", "x"), fail_fast=True))
    assert await first is None
    started = asyncio.get_running_loop().time()
    for task in (slow, other):
        with pytest.raises(TimeoutError):
            await task
    assert asyncio.get_running_loop().time() - started < 1.8  # not the 2 s of the BLPOP
    # the broken connection went back to the pool; the next round trip gets a fresh one
    await client.set("x", "1")
    assert await pipeline.execute(("GET", "x"), fail_fast=True) == "1"


async def test_closing_the_manager_mid_flight_leaves_no_connection_open() -> None:
    with LocalRedisServer() as server:  # of its own: no other test's connections
        client = Redis.from_url(server.url, decode_responses=True)
        try:
            await _close_mid_flight(server, client)
        finally:
            await client.aclose()


async def _close_mid_flight(server: LocalRedisServer, client: Redis) -> None:
    from guard_core.exceptions import GuardRedisError
    from guard_core.handlers.redis_handler import RedisManager
    from guard_core.models import SecurityConfig

    async def connections() -> int:
        return len(await client.client_list())

    baseline = await connections()
    manager = RedisManager(SecurityConfig(redis_url=server.url))
    await manager.set_key("closing", "k", "v")
    ended: list[object] = []

    async def worker() -> None:
        while True:
            try:
                await manager.get_key("closing", "k")
            except GuardRedisError as exc:
                ended.append(exc)
                return

    tasks = [asyncio.create_task(worker()) for _ in range(50)]
    await asyncio.sleep(0.2)
    assert await connections() > baseline
    await manager.close()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert len(ended) == 50
    for _ in range(100):  # the server notices closed sockets within milliseconds
        if await connections() == baseline:
            break
        await asyncio.sleep(0.02)
    assert await connections() == baseline


async def test_a_reader_cancelled_while_it_reconnects_hands_on_a_round_trip_to_resend(
    client: Redis,
) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    await client.set("x", "1")
    pipeline = pipeline_of(client, kept=1)
    assert await pipeline.execute(("GET", "x"), fail_fast=True) == "1"
    kept: Any = pipeline._idle[0]
    real_read = kept.read_response

    async def dropped(*args: Any, **kwargs: Any) -> Any:
        kept.read_response = real_read
        raise RedisConnectionError("Connection closed by server.")

    pool: Any = client.connection_pool
    real_get = pool.get_connection

    async def slow_get(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.2)  # reconnecting takes a while
        return await real_get(*args, **kwargs)

    first = asyncio.create_task(pipeline.execute(("BLPOP", "none", "0.1"), fail_fast=True))
    await asyncio.sleep(0.02)
    leader = asyncio.create_task(pipeline.execute(("GET", "x"), fail_fast=True))
    follower = asyncio.create_task(pipeline.execute(("GET", "x"), fail_fast=True))
    assert await first is None
    kept.read_response = dropped  # the next round trip finds its connection dropped
    pool.get_connection = slow_get
    await asyncio.sleep(0.1)  # the leader is reconnecting
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
    pool.get_connection = real_get
    assert await follower == "1"  # written again on a new connection, read by the follower
