"""What a face's tests need to know about the Redis they run against."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis


@dataclass
class Backend:
    name: str
    url: str
    #: Builds the face's client (None: the library's own builder, real Redis).
    client_factory: Callable[[Any], Any] | None
    #: A plain sync client on the same data, for checking what the server holds.
    inspect: redis.Redis


@dataclass
class StateEnv:
    """What a subsystem test builds its manager from: `Manager(env.config, env.redis)`."""

    mode: str  # "fakeredis", "redis" or "disabled"
    config: Any
    redis: Any  # the face's RedisManager
    #: A plain sync client on the same data (None when Redis is disabled).
    inspect: redis.Redis | None

    @property
    def shared(self) -> bool:
        return self.mode != "disabled"
