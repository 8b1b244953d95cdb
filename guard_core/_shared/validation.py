"""Argument checks shared by the subsystems: clear TypeError/ValueError naming the argument."""

from __future__ import annotations

import json
from typing import Any

#: Longest TTL accepted, in seconds (about 68 years); Redis rejects much larger expiries.
MAX_TTL = 2**31 - 1


def shown_number(value: int | float) -> str:
    """`value` for an error message; an int too long to print is summarised by its size."""
    if isinstance(value, int) and value.bit_length() > 128:
        return f"an int of {value.bit_length()} bits"
    return repr(value)


#: Largest count accepted: the Lua window holds counts as doubles, exact up to 2**53.
MAX_COUNT = 2**53


def check_count(name: str, value: object) -> int:
    """A whole number in 1..MAX_COUNT (limits, thresholds)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1 (got {shown_number(value)})")
    if value > MAX_COUNT:
        raise ValueError(f"{name} must be at most {MAX_COUNT} (got {shown_number(value)})")
    return int(value)


#: The most hits one request may count for (each is a member of the window).
MAX_COST = 1000


def check_cost(value: object) -> int:
    """A request's cost: a whole number of hits in 1..MAX_COST."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"cost must be an int, not {type(value).__name__}")
    if not 1 <= value <= MAX_COST:
        raise ValueError(f"cost must be between 1 and {MAX_COST} (got {shown_number(value)})")
    return int(value)


def check_seconds(name: str, value: object, *, minimum: float = 0.001) -> float:
    """A finite number of seconds in `minimum`..MAX_TTL (longer ones Redis cannot expire)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    # NaN fails both comparisons; no math.isfinite, which overflows on a huge int
    if not minimum <= value <= MAX_TTL:
        raise ValueError(
            f"{name} must be between {minimum} and {MAX_TTL} seconds (got {shown_number(value)})"
        )
    return float(value)


def check_text(name: str, value: object, *, allow_empty: bool = False) -> str:
    """A UTF-8 encodable str (non-empty unless `allow_empty`); it may become part of a key."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if not value and not allow_empty:
        raise ValueError(f"{name} must not be empty")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{name} is not encodable as UTF-8: {exc.reason}") from None
    return value


#: The longest stored JSON document decoded (the largest written, cached cloud ranges, is
#: a few MiB).
MAX_JSON_BYTES = 64 * 1024 * 1024


def parse_json(text: str | bytes, what: str) -> Any:
    """`text` decoded as JSON; ValueError naming `what` for anything else: not JSON, longer
    than `MAX_JSON_BYTES`, or nested too deep for the parser (a value stored by anyone with
    access to Redis must not raise RecursionError out of a check). Every JSON document read
    from Redis is decoded here."""
    if not isinstance(text, str | bytes):
        raise ValueError(f"{what} is not JSON (a {type(text).__name__})")
    if len(text) > MAX_JSON_BYTES:
        raise ValueError(f"{what} is longer than {MAX_JSON_BYTES} bytes")
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"{what} is not JSON ({type(exc).__name__})") from None
