"""What every journal topic's storage module shares: the `Topic` each registers with the
`StateStore`, what a write did (`Applied`), and how script replies and times are read.

A topic is one kind of journalled change (bans, custom patterns, documents, window resets,
outage hits): its module writes a change to Redis (`write`), and says how the shutdown
warning names its changes (`label`) and whether instances cache it (`cached`: a change
taken by Redis is then pushed to every instance).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from guard_core._shared.storage.journal import Change, Journal
from guard_core._shared.storage.lua_scripts import LuaScript
from guard_core._shared.storage.outcomes import Unavailable, Written
from guard_core.models import SecurityConfig

if TYPE_CHECKING:
    from ..connection.manager import RedisManager
    from .invalidation import Invalidations


#: The journal topics (`Change.topic`): bans and lifts, custom patterns, documents, window
#: resets, hits counted during an outage, and the shared allow list.
BAN, PATTERN, DOCUMENT, WINDOW, WINDOW_HITS = "ban", "pattern", "document", "window", "window_hits"
ALLOW = "allow"


@dataclass(frozen=True)
class Applied:
    """What a write did: Redis took it, a later change superseded it, or it is kept for
    later; `changed`: Redis's state changed (a ban was lifted, a pattern list changed)."""

    written: Written
    changed: bool = False


class Topic(Protocol):
    """The storage module of one journal topic, as the store's registry holds it."""

    #: The journal topic (`Change.topic`).
    name: str
    #: How the shutdown warning names this topic's changes ("bans and lifts").
    label: str
    #: Whether instances cache this topic's state (and so are told of each change).
    cached: bool

    async def write(self, change: Change, *, replay: bool) -> Applied:
        """Write `change` to Redis (`replay`: written back after an outage)."""
        ...


class Store(Protocol):
    """What the topic modules use of their `StateStore` (they never reach one another
    through it: the store wires them together)."""

    config: SecurityConfig
    logger: logging.Logger
    redis: RedisManager | None
    journal: Journal
    invalidations: Invalidations

    @property
    def sharing(self) -> bool: ...

    @property
    def settled(self) -> bool: ...

    def versioned(self, version: object) -> str | None: ...

    def settle(self, change: Change, written: Written) -> None: ...

    async def call(self, call: Callable[[RedisManager], Any]) -> Any: ...

    async def script(
        self, script: LuaScript, keys: Sequence[tuple[str, str]], args: Sequence[str | int | float]
    ) -> Any: ...


def applied(reply: object, changed_if: Callable[[Any], bool] | None = None) -> Applied:
    """A script's reply (0 superseded, 1 applied, 2 applied and changed) as an `Applied`."""
    if isinstance(reply, Unavailable):
        return Applied(Written.KEPT)
    if changed_if is not None:
        return Applied(Written.TAKEN, changed=changed_if(reply))
    code = int(reply)  # type: ignore[call-overload]
    if code == 0:
        return Applied(Written.SUPERSEDED)
    return Applied(Written.TAKEN, changed=code == 2)


def lua_time(value: float) -> str:
    """A time as Lua's tonumber reads it back exactly."""
    return repr(float(value))
