"""Commands in the Redis protocol (RESP), packed for the auto-pipeline's round trips."""

from __future__ import annotations

from typing import Any

from redis.exceptions import DataError


def pack(command: tuple[Any, ...]) -> bytes:
    """One command in the Redis protocol, as redis-py writes it (text as UTF-8, numbers by
    `repr`), in a fraction of its time. The command's name is one word."""
    parts = [b"*%d\r\n" % len(command)]
    for arg in command:
        kind = type(arg)
        if kind is str:
            data = arg.encode()
        elif kind is int or kind is float:
            data = repr(arg).encode()
        elif kind is bytes:
            data = arg
        else:
            data = _encode_other(arg)
        parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)


def _encode_other(arg: object) -> bytes:
    """Subclasses of the plain types, as redis-py encodes them; anything else refused."""
    if isinstance(arg, bool):
        pass
    elif isinstance(arg, str):
        return arg.encode()
    elif isinstance(arg, bytes | memoryview):
        return bytes(arg)
    elif isinstance(arg, int | float):
        return repr(arg).encode()
    raise DataError(
        f"Invalid input of type: {type(arg).__name__!r}. "
        "Convert to a bytes, string, int or float first."
    )
