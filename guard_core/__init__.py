"""guard-core: security state shared across application instances through Redis.

`guard_core` is the async face; `guard_core_sync`, generated from it, is the sync face with
the same names.
"""

from guard_core.exceptions import (
    GuardCoreError,
    GuardRedisError,
    RedisBusyError,
    RedisUnavailableError,
    UnsupportedBackendError,
)
from guard_core.models import SecurityConfig, SecurityEvent
from guard_core.version import __version__

from .guard import Guard
from .handlers.redis_handler import RedisManager

__all__ = [
    "Guard",
    "GuardCoreError",
    "GuardRedisError",
    "RedisBusyError",
    "RedisManager",
    "RedisUnavailableError",
    "SecurityConfig",
    "SecurityEvent",
    "UnsupportedBackendError",
    "__version__",
]
