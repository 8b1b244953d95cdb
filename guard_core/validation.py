"""Argument checks shared by the subsystems: clear TypeError/ValueError naming the argument."""

from __future__ import annotations

import math


def check_count(name: str, value: object) -> int:
    """A whole number >= 1 (limits, thresholds)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1 (got {value})")
    return value


def check_seconds(name: str, value: object, *, minimum: float = 0.001) -> float:
    """A finite number of seconds >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if not math.isfinite(value) or value < minimum:
        raise ValueError(f"{name} must be at least {minimum} seconds (got {value!r})")
    return float(value)


def check_text(name: str, value: object, *, allow_empty: bool = False) -> str:
    """A str (non-empty unless `allow_empty`)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if not value and not allow_empty:
        raise ValueError(f"{name} must not be empty")
    return value
