"""Paired concurrency primitives: an async one and its sync twin under matching names.

The async source uses the ``Async*``/``async_*`` names; the generator maps each to its sync
twin, so the rewrite from ``guard_core`` to ``guard_core_sync`` stays a plain word map.
"""

from __future__ import annotations

import asyncio
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
