"""Explicit outcomes of storage operations, shared by both faces.

A read answers a value, `None` for "absent", or `UNAVAILABLE` when Redis could not answer
(disabled, down, failing): three meanings, three values. A write answers a `Written`.
"""

from __future__ import annotations

import enum
from typing import Final, TypeVar

T = TypeVar("T")


class Unavailable(enum.Enum):
    """Redis could not answer; the caller answers from memory instead."""

    UNAVAILABLE = "unavailable"

    def __bool__(self) -> bool:
        return False


UNAVAILABLE: Final = Unavailable.UNAVAILABLE


class Written(enum.Enum):
    """What became of one change sent to Redis."""

    #: Redis took it.
    TAKEN = "taken"
    #: Redis holds a later change of the same thing (made elsewhere, or earlier replayed):
    #: this one is dropped, and the later one stands.
    SUPERSEDED = "superseded"
    #: Redis could not take it now: the outage journal keeps it and writes it back later.
    KEPT = "kept"
