"""The bookkeeping of the auto-pipeline's round trips: who waits for which reply, how far
a round trip's replies were read, and handing each caller its reply or its own copy of a
shared failure."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError


class Waiter:
    __slots__ = ("command", "fail_fast", "future")

    def __init__(self, command: bytes, future: asyncio.Future[Any] | None, fail_fast: bool) -> None:
        self.command = command  # packed
        self.future = future  # None for a leader that never waited
        self.fail_fast = fail_fast


class RoundTrip:
    """Commands written together on one connection, and how far their replies were read."""

    __slots__ = ("connection", "deadline", "index", "retried", "waiters")

    def __init__(self, connection: Any, waiters: list[Waiter], deadline: float) -> None:
        self.connection = connection
        self.waiters = waiters
        self.deadline = deadline
        self.index = 0  # replies read so far
        self.retried = False


def deliver(waiter: Waiter, reply: Any) -> None:
    future = waiter.future
    if future is None or future.done():
        return  # its caller was cancelled: the reply is dropped
    if isinstance(reply, BaseException):
        future.set_exception(reply)
    else:
        future.set_result(reply)


def copy_failure(exc: BaseException) -> BaseException:
    """A failure shared by several callers, one object each (tracebacks are per raise)."""
    if isinstance(exc, asyncio.CancelledError):
        # the leader was cancelled while writing: the others' commands may have gone out
        return RedisConnectionError("Round trip cut short while it was written")
    try:
        clone = type(exc)(*exc.args)
    except Exception:
        clone = RedisConnectionError(str(exc))
    clone.__cause__ = exc
    return clone
