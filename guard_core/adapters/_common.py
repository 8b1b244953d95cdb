"""What every adapter does the same way: the start of the body read once and handed on,
the user a `key="user"` limit needs, and the `on_block` hook.

Bodies: the check sees at most `CheckSettings.body_max_bytes` bytes, read before the
application; the application then reads the whole body, unchanged, from a stream that
gives back what was read and goes on with the rest (`ReplayStream` for WSGI; the ASGI
middleware replays the `receive` messages). Nothing past the bound is held in memory.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from typing import IO, Any

from guard_core._shared.policy.check_settings import CheckSettings
from guard_core._shared.policy.request_body import wants_body
from guard_core._shared.policy.request_model import Decision

logger = logging.getLogger("guard_core.checks")
_warned: set[str] = set()


def warn_once(key: str, message: str) -> None:
    """One WARNING per process for each `key` (logger `guard_core.checks`)."""
    if key not in _warned:
        _warned.add(key)
        logger.warning(message)


def wants_user(settings: CheckSettings, rule: Any) -> bool:
    """Whether this request's limits are keyed by user (the route's key, else the default)."""
    key = getattr(rule, "key", None)
    return (key if key is not None else settings.key) == "user"


def check_on_block(on_block: object) -> Callable[[Decision], Any] | None:
    if on_block is not None and not callable(on_block):
        raise TypeError(f"on_block must be a callable taking the decision, not {on_block!r}")
    return on_block


def call_on_block(on_block: Callable[[Decision], Any] | None, decision: Decision) -> Any:
    """The hook's response for a block, or None for the default JSON one (also when the
    hook raises: the request is still refused, and the failure logged)."""
    if on_block is None:
        return None
    try:
        return on_block(decision)
    except Exception as exc:
        logger.warning(
            "on_block failed (%s); the default block response was sent", type(exc).__name__
        )
        return None


async def await_on_block(on_block: Callable[[Decision], Any] | None, decision: Decision) -> Any:
    """`call_on_block` for the ASGI middleware: the hook may be a coroutine function."""
    found = call_on_block(on_block, decision)
    if inspect.isawaitable(found):
        try:
            return await found
        except Exception as exc:
            logger.warning(
                "on_block failed (%s); the default block response was sent", type(exc).__name__
            )
            return None
    return found


class ReplayStream:
    """A WSGI input (or Django request stream) that gives back `head` (what the check
    read), then the rest of `rest`: the application reads the body it was sent."""

    def __init__(self, head: bytes, rest: IO[bytes] | Any) -> None:
        self._head = head
        self._rest = rest

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            head, self._head = self._head, b""
            return head + self._rest.read()
        if self._head:
            head, self._head = self._head[:size], self._head[size:]
            if len(head) == size:
                return head
            return head + self._rest.read(size - len(head))
        return bytes(self._rest.read(size))

    def readline(self, size: int | None = -1) -> bytes:
        if self._head:
            limit = len(self._head) if size is None or size < 0 else min(size, len(self._head))
            end = self._head.find(b"\n", 0, limit)
            cut = limit if end < 0 else end + 1
            line, self._head = self._head[:cut], self._head[cut:]
            if line.endswith(b"\n") or (size is not None and 0 <= size <= len(line)):
                return line
            more = -1 if size is None or size < 0 else size - len(line)
            return line + self._rest.readline(more)
        return bytes(self._rest.readline(-1 if size is None else size))

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                break
        return lines

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        """Never: what was read is given back once, in order (newer Djangos ask)."""
        return False

    def __iter__(self) -> ReplayStream:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def close(self) -> None:
        close = getattr(self._rest, "close", None)
        if close is not None:
            close()


def read_head(stream: Any, size: int) -> bytes:
    """Up to `size` bytes of a stream (fewer only at its end)."""
    parts = []
    left = size
    while left > 0:
        part = stream.read(left)
        if not part:
            break
        parts.append(bytes(part))
        left -= len(part)
    return b"".join(parts)


def body_length(environ: Mapping[str, Any]) -> int | None:
    """The body's length from CONTENT_LENGTH (None when absent or unreadable)."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None
    return length if length >= 0 else None


def is_http1(environ: Mapping[str, Any]) -> bool:
    """Whether a WSGI request came over HTTP/1.x (`SERVER_PROTOCOL`)."""
    return str(environ.get("SERVER_PROTOCOL", "")).upper() in ("HTTP/1.0", "HTTP/1.1")


def read_wsgi_body(
    environ: dict[str, Any], headers: Mapping[str, str], settings: CheckSettings
) -> bytes:
    """The start of the body for the check; `environ["wsgi.input"]` is replaced by a stream
    that gives the application the whole body (CONTENT_LENGTH stays right: the bytes are
    the same). A body of unknown length is read only when the server says its input ends
    (`wsgi.input_terminated`, a chunked body); otherwise no WSGI application reads it."""
    if not wants_body(
        headers,
        settings.body_max_bytes,
        enabled=settings.detect_patterns,
        http1=is_http1(environ),
    ):
        return b""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    length = body_length(environ)
    if length is None and not environ.get("wsgi.input_terminated"):
        return b""
    size = settings.body_max_bytes if length is None else min(length, settings.body_max_bytes)
    if size <= 0:
        return b""
    head = read_head(stream, size)
    environ["wsgi.input"] = ReplayStream(head, stream)
    return head
