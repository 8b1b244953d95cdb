"""Storage: typed operations on shared state, over Redis when it answers and with the outage
journal when it does not. Subsystems (`guard_core.handlers`) keep policy only and call these.
"""

from .state_store import Applied, StateStore

__all__ = ["Applied", "StateStore"]
