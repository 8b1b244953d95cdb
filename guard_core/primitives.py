"""Paired concurrency primitives: an async one and its sync twin under matching names.

The async source uses the ``Async*``/``async_*`` names; the generator maps each to its sync
twin, so the rewrite from ``guard_core`` to ``guard_core_sync`` stays a plain word map.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext, suppress

import anyio

from guard_core.exceptions import UnsupportedBackendError

logger = logging.getLogger("guard_core.background")


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


def async_cancel_shield() -> AbstractContextManager[object]:
    """A scope that lets clean-up finish even when the surrounding task is cancelled."""
    return anyio.CancelScope(shield=True)


def cancel_shield() -> AbstractContextManager[object]:
    """Threads are not cancelled from outside: nothing to shield."""
    return nullcontext()


class AsyncTicker:
    """Runs `await tick()` every `interval` seconds in a background task until `stop()`.

    Redis needs the asyncio backend, so the task is an asyncio task of the running loop;
    without one (trio) nothing runs in the background and callers write back on later use.
    """

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    def start(self, tick: Callable[[], Awaitable[None]], interval: float) -> None:
        if self._task is not None and not self._task.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            logger.debug("No asyncio event loop: no background flusher")
            return
        self._task = loop.create_task(self._run(tick, interval))

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None or task.done():
            return
        task.cancel()
        with async_cancel_shield(), suppress(asyncio.CancelledError):
            await task

    @staticmethod
    async def _run(tick: Callable[[], Awaitable[None]], interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
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
    """Runs `tick()` every `interval` seconds in a daemon thread until `stop()`."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self, tick: Callable[[], None], interval: float) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(tick, interval, self._stopping), daemon=True,
            name="guard-core-flusher",
        )  # fmt: skip
        self._thread.start()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        self._stopping.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    @staticmethod
    def _run(tick: Callable[[], None], interval: float, stopping: threading.Event) -> None:
        while not stopping.wait(interval):
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


class AsyncSlots:
    """At most `count` holders at once; `acquire` waits up to `timeout` seconds for a slot."""

    def __init__(self, count: int, timeout: float) -> None:
        self._semaphore = anyio.Semaphore(count)
        self._timeout = timeout

    def try_acquire(self) -> bool:
        """True when a slot was free (and is now held), without waiting."""
        try:
            self._semaphore.acquire_nowait()
            return True
        except anyio.WouldBlock:
            return False

    async def acquire(self) -> bool:
        """True once a slot is held; False when none came free within the timeout."""
        if self.try_acquire():  # the usual case: no cancel scope, no wait
            return True
        with anyio.move_on_after(self._timeout):
            await self._semaphore.acquire()
            return True
        return False

    def release(self) -> None:
        self._semaphore.release()


class Slots:
    """At most `count` threads hold a slot at once; `acquire` waits up to `timeout` seconds.

    The free slots are tokens in a `queue.SimpleQueue`, whose get and put are C code: a
    tenth of the cost of a `threading.Semaphore` on every command."""

    def __init__(self, count: int, timeout: float) -> None:
        self._free: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(count):
            self._free.put(None)
        self._timeout = timeout

    def try_acquire(self) -> bool:
        """True when a slot was free (and is now held), without waiting."""
        try:
            self._free.get_nowait()
            return True
        except queue.Empty:
            return False

    def acquire(self) -> bool:
        """True once a slot is held; False when none came free within the timeout."""
        try:
            self._free.get(timeout=self._timeout)
            return True
        except queue.Empty:
            return False

    def release(self) -> None:
        self._free.put(None)
