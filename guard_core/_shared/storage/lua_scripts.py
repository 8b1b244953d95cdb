"""Lua scripts shipped as resource files under `guard_core/_shared/storage/lua/`, read once
at import."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True)
class LuaScript:
    """A script's source and the SHA1 that EVALSHA names it by."""

    name: str
    source: str
    sha: str


def load_script(name: str) -> LuaScript:
    source = (
        resources.files("guard_core._shared.storage")
        .joinpath("lua", f"{name}.lua")
        .read_text("utf-8")
    )
    return LuaScript(name=name, source=source, sha=hashlib.sha1(source.encode()).hexdigest())


#: Sliding window (rate limits, behaviour tracking): see `lua/sliding_window.lua`.
SLIDING_WINDOW = load_script("sliding_window")

#: Ban or lift one address, later change wins: see `lua/ban_write.lua`.
BAN_WRITE = load_script("ban_write")

#: Ban or lift one network in the network-ban index: see `lua/network_ban_write.lua`.
NETWORK_BAN_WRITE = load_script("network_ban_write")

#: Add or remove one custom pattern, later change wins: see `lua/pattern_write.lua`.
PATTERN_WRITE = load_script("pattern_write")

#: Store a JSON document unless the stored one is newer: see `lua/document_write.lua`.
DOCUMENT_WRITE = load_script("document_write")

#: Heartbeat of one instance, and the live instances: see `lua/membership.lua`.
MEMBERSHIP = load_script("membership")

#: Write hits counted during an outage into a shared window, once: see `lua/window_merge.lua`.
WINDOW_MERGE = load_script("window_merge")
