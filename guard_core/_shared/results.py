"""Result types that the pure and the face code both build."""

from __future__ import annotations

from typing import NamedTuple


class RateLimitResult(NamedTuple):
    """The verdict on one request: admitted or not, and what the window looks like now.

    A named tuple: immutable, and cheap to build on every request. Its `count` field hides
    the tuple method of that name.
    """

    allowed: bool
    #: Hits in the window, this one included when admitted.
    count: int  # type: ignore[assignment]  # the field, not tuple.count
    limit: int
    #: Hits still admitted in the window.
    remaining: int
    #: Seconds until the oldest hit leaves the window (0 when the window is empty).
    reset_after: float
