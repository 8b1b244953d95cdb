"""Waiting for a guard's write-back, which its background flusher does (a call only wakes
it): the async twin for the async face, the plain one for the sync face."""

from __future__ import annotations

import time
from typing import Any

from guard_core._shared.concurrency import async_sleep, sleep


def _unfinished(store: Any) -> bool:
    return bool(store.writing_back)


async def async_written_back(store: Any, timeout: float = 10.0) -> None:
    """Until the store (a guard's, or a subsystem's own) holds nothing Redis lacks (after a
    recovery or a restart it noticed)."""
    deadline = time.monotonic() + timeout
    while _unfinished(store):
        if time.monotonic() > deadline:
            raise AssertionError(f"the write-back not done within {timeout} s")
        await store.sync()  # wakes the flusher (writes a step itself without one)
        await async_sleep(0.01)


def written_back(store: Any, timeout: float = 10.0) -> None:
    """Until the store (a guard's, or a subsystem's own) holds nothing Redis lacks (after a
    recovery or a restart it noticed)."""
    deadline = time.monotonic() + timeout
    while _unfinished(store):
        if time.monotonic() > deadline:
            raise AssertionError(f"the write-back not done within {timeout} s")
        store.sync()  # wakes the flusher (writes a step itself without one)
        sleep(0.01)
