"""Paired concurrency primitives: an async one and its sync twin under matching names.

The async source uses the ``Async*``/``async_*`` names; the generator maps each to its sync
twin, so the rewrite from ``guard_core`` to ``guard_core_sync`` stays a plain word map.
"""

from __future__ import annotations

import threading
import time
from contextlib import AbstractContextManager, nullcontext

import anyio


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


class AsyncSlots:
    """At most `count` holders at once; `acquire` waits up to `timeout` seconds for a slot."""

    def __init__(self, count: int, timeout: float) -> None:
        self._semaphore = anyio.Semaphore(count)
        self._timeout = timeout

    async def acquire(self) -> bool:
        """True once a slot is held; False when none came free within the timeout."""
        try:
            self._semaphore.acquire_nowait()  # the usual case: no cancel scope, no wait
            return True
        except anyio.WouldBlock:
            pass
        with anyio.move_on_after(self._timeout):
            await self._semaphore.acquire()
            return True
        return False

    def release(self) -> None:
        self._semaphore.release()


class Slots:
    """At most `count` threads hold a slot at once; `acquire` waits up to `timeout` seconds."""

    def __init__(self, count: int, timeout: float) -> None:
        self._semaphore = threading.BoundedSemaphore(count)
        self._timeout = timeout

    def acquire(self) -> bool:
        """True once a slot is held; False when none came free within the timeout."""
        return self._semaphore.acquire(timeout=self._timeout)

    def release(self) -> None:
        self._semaphore.release()
