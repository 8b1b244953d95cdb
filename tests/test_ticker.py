"""The background ticker ends when stopped, even when a tick swallows its cancellation."""

from __future__ import annotations

import asyncio

import pytest

from guard_core._shared.concurrency import AsyncTicker

pytestmark = pytest.mark.anyio


async def test_a_tick_that_turns_its_cancellation_into_a_timeout_still_ends() -> None:
    started = asyncio.Event()
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        ticks += 1
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            # what a timeout context racing with a cancellation may do inside a client
            raise TimeoutError("the timeout took the cancellation for its own") from None

    ticker = AsyncTicker()
    ticker.start(tick, 0.001)
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.wait_for(ticker.stop(), 5)  # before the fix: ticked on forever
    assert ticks == 1
