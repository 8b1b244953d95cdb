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
