"""Storage: typed operations on shared state, over Redis when it answers and with the outage
journal when it does not. Subsystems (`guard_core.handlers`) keep policy only and call these.

`state_store` holds the journal, the flusher and the registry of topics; each topic has a
module of its own (`bans` with `network_bans`, `allow_list`, `patterns`, `documents`, `windows`,
`outage_hits` with `membership`), and `mirror` keeps every ban for use during an outage.
"""

from .state_store import StateStore
from .topics import Applied, Topic

__all__ = ["Applied", "StateStore", "Topic"]
