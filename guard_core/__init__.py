"""guard-core: security state shared across application instances through Redis.

`guard_core` is the async face; `guard_core_sync`, generated from it, is the sync face with
the same names. What users import is listed in `__all__`: the entry point (`Guard`), its
configuration, the subsystems, the request check the adapters run, the rule decorators,
the result types and the errors. Other modules are internal: their names may change.
"""

from guard_core._shared.policy.attack_patterns import PatternList, PatternMatch
from guard_core._shared.policy.check_settings import CheckSettings
from guard_core._shared.policy.header_presets import fastapi_docs_overrides
from guard_core._shared.policy.rate_limit_rules import (
    RouteRule,
    exempt,
    guard_rule,
    rate_limit,
    shared_limit,
)
from guard_core._shared.policy.request_model import Decision, LimitState, RequestInfo
from guard_core._shared.policy.security_headers import HeadersConfig
from guard_core._shared.storage.memory_bans import BanRecord
from guard_core.exceptions import (
    GuardCoreError,
    GuardRedisError,
    RedisBusyError,
    RedisUnavailableError,
    UnsupportedBackendError,
)
from guard_core.models import GuardHealth, RateLimitResult, SecurityConfig, SecurityEvent
from guard_core.version import __version__

from .connection.manager import RedisManager
from .guard import Guard
from .handlers.allow_handler import AllowListManager
from .handlers.behavior_handler import BehaviorTracker
from .handlers.cloud_handler import CloudManager
from .handlers.ipban_handler import IPBanManager
from .handlers.ratelimit_handler import RateLimitManager
from .handlers.security_headers_handler import SecurityHeadersManager
from .handlers.suspatterns_handler import SusPatternsManager
from .request_check import RequestCheck

__all__ = [
    "AllowListManager",
    "BanRecord",
    "BehaviorTracker",
    "CheckSettings",
    "CloudManager",
    "Decision",
    "Guard",
    "GuardCoreError",
    "GuardHealth",
    "GuardRedisError",
    "HeadersConfig",
    "IPBanManager",
    "LimitState",
    "PatternList",
    "PatternMatch",
    "RateLimitManager",
    "RateLimitResult",
    "RedisBusyError",
    "RedisManager",
    "RedisUnavailableError",
    "RequestCheck",
    "RequestInfo",
    "RouteRule",
    "SecurityConfig",
    "SecurityEvent",
    "SecurityHeadersManager",
    "SusPatternsManager",
    "UnsupportedBackendError",
    "__version__",
    "exempt",
    "fastapi_docs_overrides",
    "guard_rule",
    "rate_limit",
    "shared_limit",
]
