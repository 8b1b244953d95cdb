"""`RedisManager` at the path the seed documents (`guard_core.handlers.redis_handler`); it
lives in `guard_core.connection.manager`, the connection layer below the subsystems.
"""

from ..connection.manager import RedisManager, redis_handler
from ..connection.operations import SCAN_COUNT

__all__ = ["SCAN_COUNT", "RedisManager", "redis_handler"]
