"""Connection slots: at most so many callers hold a Redis connection at once, served first
come, first served (`AsyncSlots` for the async face, `Slots` for the sync face, paired names
the generator maps one to the other)."""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
from collections import deque
from contextlib import suppress

from guard_core.exceptions import RedisBusyError


class _SlotWaiter:
    """A caller queued for a slot (async face): `future` is handed the slot (True) or
    told that none came free within the timeout (False)."""

    __slots__ = ("future", "timer")

    def __init__(self, future: asyncio.Future[bool]) -> None:
        self.future = future
        self.timer: asyncio.TimerHandle | None = None


class AsyncSlots:
    """At most `count` holders at once, served first come, first served.

    A caller that finds none free queues; a slot given back goes to the first caller in
    the queue (never to one arriving later). A caller gives up (`acquire` returns False)
    only when no slot at all came free for `timeout` seconds: while slots keep coming free
    the queue moves, and a busy but healthy Redis makes its callers wait, not fail. The
    waiting needs the asyncio loop, which the manager requires before any slot is taken.
    """

    def __init__(self, count: int, timeout: float) -> None:
        self._free = count
        self._timeout = timeout
        self._waiters: deque[_SlotWaiter] = deque()
        self._released = 0  # slots given back so far: the queue's progress

    def try_acquire(self) -> bool:
        """True when a slot was free (and is now held), without waiting."""
        if self._free:  # only ever free with nobody queued: a release hands on first
            self._free -= 1
            return True
        return False

    async def acquire(self) -> bool:
        """True once a slot is held; False when no slot came free for the timeout."""
        if self._free:  # the usual case: no future, no wait
            self._free -= 1
            return True
        loop = asyncio.get_running_loop()
        waiter = _SlotWaiter(loop.create_future())
        self._waiters.append(waiter)
        waiter.timer = loop.call_later(self._timeout, self._expire, waiter, self._released)
        try:
            return await waiter.future
        except asyncio.CancelledError:
            future = waiter.future
            if future.done() and not future.cancelled() and future.result():
                self.release()  # handed a slot as it was cancelled: the next one has it
            else:
                with suppress(ValueError):
                    self._waiters.remove(waiter)
            raise
        finally:
            if waiter.timer is not None:
                waiter.timer.cancel()

    def _expire(self, waiter: _SlotWaiter, released: int) -> None:
        """`timeout` seconds passed since `waiter` queued or last saw the queue move."""
        if waiter.future.done():
            return
        if self._released != released:  # slots came free meanwhile: keep waiting
            loop = waiter.future.get_loop()
            waiter.timer = loop.call_later(self._timeout, self._expire, waiter, self._released)
            return
        with suppress(ValueError):
            self._waiters.remove(waiter)
        waiter.future.set_result(False)

    def release(self) -> None:
        self._released += 1
        waiters = self._waiters
        while waiters:
            future = waiters.popleft().future
            if not future.done():
                future.set_result(True)  # the slot goes to it, never counted free
                return
        self._free += 1

    def busy(self) -> RedisBusyError:
        """The error of a caller that gave up waiting (`acquire` returned False)."""
        return RedisBusyError(
            503, f"No Redis connection came free within {self._timeout:g} s (all in use)"
        )


class _Gate:
    """A thread queued for a slot (sync face): `lock` is released once it is handed one."""

    __slots__ = ("handed", "lock")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lock.acquire()
        self.handed = False


class Slots:
    """At most `count` threads hold a slot at once, served first come, first served.

    A thread that finds none free queues; a slot given back goes to the first thread in
    the queue, never to one arriving later (with a plain semaphore or queue the releasing
    thread takes it straight back, and a waiter can starve however fast slots come free).
    A thread gives up (`acquire` returns False) only when no slot at all came free for
    `timeout` seconds.

    While nobody queues, the free slots are tokens in a `queue.SimpleQueue`, whose get and
    put are C code: a tenth of the cost of a `threading.Semaphore` on every command. The
    queue of waiters and the hand-over take a lock.
    """

    def __init__(self, count: int, timeout: float) -> None:
        self._free: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(count):
            self._free.put(None)
        self._timeout = timeout
        self._lock = threading.Lock()
        self._waiters: deque[_Gate] = deque()
        self._ticks = itertools.count()
        self._released = 0  # changes each time a slot is given back: the queue's progress

    def try_acquire(self) -> bool:
        """True when a slot was free (and is now held), without waiting."""
        if self._waiters:
            return False  # queued threads come first
        try:
            self._free.get_nowait()
            return True
        except queue.Empty:
            return False

    def acquire(self) -> bool:
        """True once a slot is held; False when no slot came free for the timeout."""
        if self.try_acquire():
            return True
        gate = _Gate()
        with self._lock:
            self._waiters.append(gate)
            released = self._released
            self._hand_over()  # a slot given back as this thread queued
        while not gate.lock.acquire(timeout=self._timeout):
            with self._lock:
                if gate.handed:
                    gate.lock.acquire()  # handed as the wait ended: released already
                    return True
                if self._released == released:
                    self._waiters.remove(gate)
                    return False
                released = self._released  # slots came free meanwhile: keep waiting
        return True

    def release(self) -> None:
        self._released = next(self._ticks)
        self._free.put(None)
        if self._waiters:  # (checked after the put: a thread queueing meanwhile sees it)
            with self._lock:
                self._hand_over()

    def _hand_over(self) -> None:
        """Give free slots to queued threads, first come first served (under the lock)."""
        waiters = self._waiters
        while waiters:
            try:
                self._free.get_nowait()
            except queue.Empty:
                return
            gate = waiters.popleft()
            gate.handed = True
            gate.lock.release()

    def busy(self) -> RedisBusyError:
        """The error of a caller that gave up waiting (`acquire` returned False)."""
        return RedisBusyError(
            503, f"No Redis connection came free within {self._timeout:g} s (all in use)"
        )
