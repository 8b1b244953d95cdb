"""Auto-pipelining: commands that tasks issue at the same time share round trips.

`AsyncAutoPipeline` (the async face) batches with no background task, leader and followers:

- A command that finds nothing in flight goes out at once, alone: a caller that runs by
  itself pays nothing for batching. One that finds a round trip in flight and a kept
  connection free leads the next round trip after one turn of the event loop, so that the
  callers its predecessor's replies woke join it.
- Otherwise it waits in a queue. When a round trip ends, the first waiter becomes the next
  leader. A leader writes its share of the queue (the queue split evenly over the kept
  connections) in one go, reads the replies in order and gives each caller its own reply
  or its own error reply (a WRONGTYPE fails its caller only, as it would have alone).
  Even shares keep Redis and this process busy at once: one runs a round trip's commands
  while the other reads another's replies.
- A reader cancelled half-way hands the rest of the round trip to a waiter that still
  wants its reply (redis-py's parsers resume a cancelled read), so one cancelled caller
  costs the others nothing. A connection that drops is replaced once and the commands
  not yet answered are sent again, as redis-py's own retry would; a round trip not answered
  within the socket timeout fails the commands in it, as each would have failed alone.
- When Redis has failed while callers waited, those admitted before the failure fail fast
  (`RedisUnavailableError`) rather than wait for another timeout.

It runs on asyncio (redis.asyncio does; the manager refuses other backends first), and uses
asyncio futures, the cheapest wake-up there is. `AutoPipeline` (the sync face) sends each
command at once: every thread of a WSGI server has its own connection.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from guard_core._shared.concurrency import async_cancel_shield
from guard_core._shared.connection.slots import AsyncSlots, Slots
from guard_core.exceptions import RedisUnavailableError

from .resp import pack
from .round_trips import RoundTrip, Waiter, copy_failure, deliver

#: Round trips in flight at once, each on a connection kept for it (async face).
ROUND_TRIPS = 2

_LEAD = object()  # a waiter's signal: lead the next round trip


def connections_for_subscription(max_connections: int) -> int:
    """Connections the invalidation subscription holds out of `redis_max_connections`."""
    return 1 if max_connections >= 2 else 0


class AsyncAutoPipeline:
    """Sends the commands of concurrent tasks together (see the module's docstring).

    `kept` connections are taken from the client's pool and kept for round trips (0: each
    command is sent on its own under one of `slots`, as for a Cluster client, whose
    commands go to several nodes). `usable()` says whether Redis is believed up.
    """

    def __init__(
        self,
        client: Any,
        slots: AsyncSlots,
        *,
        kept: int,
        timeout: float,
        usable: Callable[[], bool],
    ) -> None:
        self.client = client
        self._pool: Any = client.connection_pool if kept else None  # no pool: Cluster
        self._slots = slots
        self._kept = kept
        self._timeout = timeout
        self._usable = usable
        self._idle: list[Any] = []  # kept connections between round trips
        self._in_flight = 0  # round trips being written or read (at most `kept`)
        self._queue: deque[Waiter] = deque()
        self._closed = False

    @staticmethod
    def connections_kept(max_connections: int, *, batching: bool) -> int:
        """Connections kept for round trips out of `redis_max_connections`: the rest
        (less the subscription's) serve other calls, so the pool never runs short."""
        if not batching:
            return 0
        spare = max_connections - connections_for_subscription(max_connections) - 1
        return max(0, min(ROUND_TRIPS, spare))

    def close(self) -> None:
        """Its client is being closed: no round trip starts or is sent again from now on,
        so no connection is opened behind the closed client's back."""
        self._closed = True

    async def execute(self, command: tuple[Any, ...], *, fail_fast: bool) -> Any:
        """`command`'s reply; an error reply is raised to this caller only."""
        if not self._kept:
            return await self._direct(command, fail_fast)
        packed = pack(command)
        if not self._queue:
            if not self._in_flight:  # nothing in flight: out at once
                self._in_flight = 1
                return await self._lead(Waiter(packed, None, fail_fast))
            if self._in_flight < self._kept:
                # Others are busy (their replies wake callers who send again): lead the
                # next round trip after one turn of the event loop, so they join it.
                self._in_flight += 1
                try:
                    await asyncio.sleep(0)
                except asyncio.CancelledError:
                    self._hand_on()
                    raise
                return await self._lead(Waiter(packed, None, fail_fast))
        waiter = Waiter(packed, asyncio.get_running_loop().create_future(), fail_fast)
        self._queue.append(waiter)
        return await self._follow(waiter)

    async def _direct(self, command: tuple[Any, ...], fail_fast: bool) -> Any:
        slots = self._slots
        if not slots.try_acquire():
            if not await slots.acquire():
                raise slots.busy()
            if fail_fast and not self._usable():
                # Redis failed while this caller waited for a slot: fail fast too
                slots.release()
                raise RedisUnavailableError(503, "Redis unavailable (circuit open)")
        try:
            return await self.client.execute_command(*command)
        finally:
            slots.release()

    async def _follow(self, waiter: Waiter) -> Any:
        future = waiter.future
        assert future is not None
        try:
            signal = await future
        except asyncio.CancelledError:
            await self._withdraw(waiter)
            raise
        if signal is _LEAD:
            return await self._lead(waiter)
        if isinstance(signal, RoundTrip):  # the reader before us was cancelled
            return await self._read(signal, waiter)
        return signal

    async def _withdraw(self, waiter: Waiter) -> None:
        """A waiter cancelled: leave the queue, or pass on a duty handed to it meanwhile."""
        future = waiter.future
        assert future is not None
        if not future.done() or future.cancelled():
            with suppress(ValueError):  # written already: its reply is read and dropped
                self._queue.remove(waiter)
            return
        if future.exception() is not None:
            return
        signal = future.result()
        if signal is _LEAD:
            self._hand_on()
        elif isinstance(signal, RoundTrip) and not self._hand_over(signal, waiter):
            await self._finish(signal, broken=True)

    async def _lead(self, own: Waiter) -> Any:
        """Write `own` and its share of the queued commands in one round trip, then read it.

        The share is the queue split evenly over the kept connections: a connection that is
        free takes the rest at once, a busy one when its round trip ends. Round trips of
        even size keep Redis and this process busy at the same time, one writing or running
        commands while the other reads replies."""
        queue = self._queue
        share = len(queue) if self._kept == 1 else (len(queue) + self._kept) // self._kept - 1
        waiters = [own]
        for _ in range(share):
            waiters.append(queue.popleft())
        if self._closed:
            closed = RedisConnectionError("Redis connection closed")
            self._fail(waiters, own, closed)
            self._hand_on()
            raise closed
        if queue and self._in_flight < self._kept:
            self._in_flight += 1
            if not self._wake_leader():
                self._in_flight -= 1
        own_error: Exception | None = None
        if not self._usable():
            kept: list[Waiter] = []
            for waiter in waiters:
                if not waiter.fail_fast:
                    kept.append(waiter)
                    continue
                error = RedisUnavailableError(503, "Redis unavailable (circuit open)")
                if waiter is own:
                    own_error = error
                else:
                    deliver(waiter, error)
            waiters = kept
        if not waiters:
            self._hand_on()
            assert own_error is not None
            raise own_error
        try:
            connection = self._idle.pop() if self._idle else await self._pool.get_connection()
        except asyncio.CancelledError:
            # nothing written yet: the others wait for the next leader
            self._queue.extendleft(reversed([w for w in waiters if w is not own]))
            self._hand_on()
            raise
        except BaseException as exc:
            self._fail(waiters, own, exc)
            self._hand_on()
            raise
        trip = RoundTrip(connection, waiters, asyncio.get_running_loop().time() + self._timeout)
        try:
            await self._send(trip)
        except BaseException as exc:
            self._fail(waiters, own, exc)
            await self._finish(trip, broken=True)
            raise
        outcome = await self._read(trip, own)
        if own_error is not None:
            raise own_error
        return outcome

    async def _send(self, trip: RoundTrip) -> None:
        """Write the commands not answered yet; a dropped connection is replaced once."""
        while True:
            connection = trip.connection
            try:
                commands = b"".join(waiter.command for waiter in trip.waiters[trip.index :])
                await connection.send_packed_command(commands)
                return
            except RedisConnectionError:
                if trip.retried:
                    raise
                trip.retried = True
                await self._replace(trip)

    async def _replace(self, trip: RoundTrip) -> None:
        """Give the round trip's connection back to the pool, disconnected, and take another
        (the commands not answered yet are to be written again on it)."""
        if self._closed:
            raise RedisConnectionError("Redis connection closed")
        connection, trip.connection = trip.connection, None
        if connection is not None:
            with async_cancel_shield():
                await connection.disconnect(nowait=True)
                await self._pool.release(connection)
        trip.connection = await self._pool.get_connection()

    async def _read(self, trip: RoundTrip, own: Waiter | None) -> Any:
        """Read the round trip's replies from where it stands, giving each to its caller;
        return `own`'s (or raise its error reply)."""
        outcome: Any = None
        try:
            async with asyncio.timeout_at(trip.deadline):
                if trip.connection is None:  # the reader before was cancelled reconnecting
                    await self._replace(trip)
                    await self._send(trip)
                while trip.index < len(trip.waiters):
                    try:
                        reply = await trip.connection.read_response(
                            timeout=math.inf, disconnect_on_error=False
                        )
                    except ResponseError as error:
                        reply = error
                    except RedisConnectionError:
                        if trip.retried:
                            raise
                        trip.retried = True
                        await self._replace(trip)
                        await self._send(trip)
                        continue
                    waiter = trip.waiters[trip.index]
                    trip.index += 1
                    if waiter is own:
                        outcome = reply
                    else:
                        deliver(waiter, reply)
        except asyncio.CancelledError:
            # cancelled from outside (the deadline raises TimeoutError): someone else reads on
            if not self._hand_over(trip, own):
                await self._finish(trip, broken=True)
            raise
        except BaseException as exc:
            self._fail(trip.waiters[trip.index :], own, exc)
            await self._finish(trip, broken=True)
            raise
        await self._finish(trip, broken=False)
        if isinstance(outcome, ResponseError):
            raise outcome
        return outcome

    def _hand_over(self, trip: RoundTrip, reader: Waiter | None) -> bool:
        """Make the next waiter of `trip` that still wants its reply read the rest."""
        for waiter in trip.waiters[trip.index :]:
            future = waiter.future
            if waiter is not reader and future is not None and not future.done():
                future.set_result(trip)
                return True
        return False

    async def _finish(self, trip: RoundTrip, *, broken: bool) -> None:
        """Keep the connection for the next round trip (or, broken, give it back to the pool
        disconnected), and pass the turn to the first waiter."""
        connection, trip.connection = trip.connection, None
        if connection is not None:
            if broken:
                with async_cancel_shield():
                    await connection.disconnect(nowait=True)
                    await self._pool.release(connection)
            else:
                self._idle.append(connection)
        self._hand_on()

    def _hand_on(self) -> None:
        """A round trip ended: the first waiter leads the next, or one fewer is in flight."""
        if not self._wake_leader():
            self._in_flight -= 1

    def _wake_leader(self) -> bool:
        """Make the first waiter still waiting lead a round trip; False when there is none."""
        while self._queue:
            waiter = self._queue.popleft()
            future = waiter.future
            if future is not None and not future.done():
                future.set_result(_LEAD)
                return True
        return False

    @staticmethod
    def _fail(waiters: list[Waiter], own: Waiter | None, exc: BaseException) -> None:
        """Give each waiter but `own` a copy of a failure of the whole round trip."""
        for waiter in waiters:
            if waiter is not own:
                deliver(waiter, copy_failure(exc))


class AutoPipeline:
    """The sync face's twin of `AsyncAutoPipeline`: each command is sent at once, under
    one of `slots` (threads do not share round trips)."""

    def __init__(
        self,
        client: Any,
        slots: Slots,
        *,
        kept: int,
        timeout: float,
        usable: Callable[[], bool],
    ) -> None:
        self.client = client
        self._slots = slots
        self._usable = usable

    @staticmethod
    def connections_kept(max_connections: int, *, batching: bool) -> int:
        """None: threads do not share round trips."""
        return 0

    def close(self) -> None:
        """Nothing to stop: each thread's command is its own."""

    def execute(self, command: tuple[Any, ...], *, fail_fast: bool) -> Any:
        """`command`'s reply; an error reply is raised."""
        slots = self._slots
        if not slots.try_acquire():
            if not slots.acquire():
                raise slots.busy()
            if fail_fast and not self._usable():
                # Redis failed while this thread waited for a slot: fail fast too
                slots.release()
                raise RedisUnavailableError(503, "Redis unavailable (circuit open)")
        try:
            return self.client.execute_command(*command)
        finally:
            slots.release()
