"""Paired concurrency primitives: an async one and its sync twin under matching names.

The async source uses the ``Async*``/``async_*`` names; the generator maps each to its sync
twin, so the rewrite from ``guard_core`` to ``guard_core_sync`` stays a plain word map.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext, suppress
from typing import TypeVar

import anyio

from guard_core.exceptions import RedisBusyError, UnsupportedBackendError

logger = logging.getLogger("guard_core.background")

T = TypeVar("T")


class AsyncLock:
    """An anyio lock (``async with lock:``)."""

    def __init__(self) -> None:
        self._lock = anyio.Lock()

    async def __aenter__(self) -> None:
        await self._lock.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self._lock.release()


class Lock:
    """A threading lock (``with lock:``), shared safely by the threads of a WSGI server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()


async def async_sleep(seconds: float) -> None:
    """Sleep without blocking the event loop (cancellable through anyio)."""
    await anyio.sleep(seconds)


def sleep(seconds: float) -> None:
    """Sleep the calling thread."""
    time.sleep(seconds)


async def async_all_at_once(calls: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    """Await every call at once (tasks of the running loop); their results, in order."""
    return list(await asyncio.gather(*(call() for call in calls)))


def all_at_once(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Run every call at once, each in a thread of its own; their results, in order. (The
    threads are the call's own: a pool shared by every guard of the process let one guard's
    calls, blocked on a Redis that is gone, starve another's write-back.)"""
    if len(calls) < 2:
        return [call() for call in calls]
    with ThreadPoolExecutor(max_workers=len(calls), thread_name_prefix="guard-core") as pool:
        futures = [pool.submit(call) for call in calls]
        return [future.result() for future in futures]


def async_cancel_shield() -> AbstractContextManager[object]:
    """A scope that lets clean-up finish even when the surrounding task is cancelled."""
    return anyio.CancelScope(shield=True)


def cancel_shield() -> AbstractContextManager[object]:
    """Threads are not cancelled from outside: nothing to shield."""
    return nullcontext()


class AsyncTicker:
    """Runs `await tick()` every `interval` seconds in a background task until `stop()`,
    and at once when woken (`wake()`).

    Redis needs the asyncio backend, so the task is an asyncio task of the running loop;
    without one (trio) nothing runs in the background and callers write back on later use.
    """

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None

    @property
    def running(self) -> bool:
        """Whether the background task runs on the caller's event loop (a task left on a
        loop that stopped does not run: the caller then does the work itself)."""
        task = self._task
        if task is None or task.done():
            return False
        try:
            return task.get_loop() is asyncio.get_running_loop()
        except RuntimeError:
            return False

    def start(self, tick: Callable[[], Awaitable[None]], interval: float) -> None:
        if self._task is not None and not self._task.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            logger.debug("No asyncio event loop: no background flusher")
            return
        self._wakeup = wakeup = asyncio.Event()
        self._task = loop.create_task(self._run(tick, interval, wakeup))

    def wake(self) -> None:
        """Run the next tick now rather than at the end of the interval (called on the
        task's own loop)."""
        wakeup = self._wakeup
        if wakeup is not None:
            wakeup.set()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None or task.done():
            return
        task.cancel()
        with async_cancel_shield(), suppress(asyncio.CancelledError):
            await task

    @staticmethod
    async def _run(
        tick: Callable[[], Awaitable[None]], interval: float, wakeup: asyncio.Event
    ) -> None:
        while True:
            with suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), interval)
            wakeup.clear()
            try:
                await tick()
            except Exception:
                if not async_cancel_requested():
                    logger.exception("Background tick failed; trying again in %.1f s", interval)
            if async_cancel_requested():
                # a timeout inside the tick took the cancellation for its own: end anyway
                raise asyncio.CancelledError


def async_cancel_requested() -> bool:
    """Whether the running asyncio task has been asked to stop, even if a timeout on the way
    swallowed the `CancelledError` (a background loop must then end, not go on forever)."""
    try:
        task = asyncio.current_task()
    except RuntimeError:
        return False
    return task is not None and task.cancelling() > 0


def cancel_requested() -> bool:
    """Threads are not cancelled from outside: never."""
    return False


class Ticker:
    """Runs `tick()` every `interval` seconds in a daemon thread until `stop()`, and at once
    when woken (`wake()`)."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._wakeup = threading.Event()

    @property
    def running(self) -> bool:
        """Whether the background thread runs."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self, tick: Callable[[], None], interval: float) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping = threading.Event()
        self._wakeup = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(tick, interval, self._stopping, self._wakeup), daemon=True,
            name="guard-core-flusher",
        )  # fmt: skip
        self._thread.start()

    def wake(self) -> None:
        """Run the next tick now rather than at the end of the interval."""
        self._wakeup.set()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        self._stopping.set()
        self._wakeup.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    @staticmethod
    def _run(
        tick: Callable[[], None],
        interval: float,
        stopping: threading.Event,
        wakeup: threading.Event,
    ) -> None:
        while True:
            wakeup.wait(interval)
            wakeup.clear()
            if stopping.is_set():
                return
            try:
                tick()
            except Exception:
                logger.exception("Background tick failed; trying again in %.1f s", interval)


def async_require_asyncio() -> None:
    """Raise `UnsupportedBackendError` unless an asyncio event loop runs this task:
    redis.asyncio runs on asyncio only (anyio's trio backend has no asyncio loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise UnsupportedBackendError(
            "Redis needs the asyncio backend: redis.asyncio runs on asyncio only, and no "
            "asyncio event loop runs here (trio?). Run the app on asyncio, or set "
            "enable_redis=False, which works under trio (state then stays in memory, per "
            "instance)."
        ) from None


def require_asyncio() -> None:
    """Threads need no event loop: nothing to check."""


def async_loop_token() -> object:
    """The running event loop (None outside asyncio): a client made on one loop cannot be
    used on another, so the async face rebuilds its client when this changes."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def loop_token() -> object:
    """Threads share one client: nothing to rebuild."""
    return None


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
