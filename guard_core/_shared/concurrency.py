"""Paired concurrency primitives: an async one and its sync twin under matching names.

The async source uses the ``Async*``/``async_*`` names; the generator maps each to its sync
twin, so the rewrite from ``guard_core`` to ``guard_core_sync`` stays a plain word map.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext, suppress
from typing import TypeVar

import anyio

from guard_core.exceptions import UnsupportedBackendError

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
