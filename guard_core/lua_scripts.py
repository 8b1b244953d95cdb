"""Lua scripts shipped as resource files under `guard_core/lua/`, read once at import."""

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
    source = resources.files("guard_core").joinpath("lua", f"{name}.lua").read_text("utf-8")
    return LuaScript(name=name, source=source, sha=hashlib.sha1(source.encode()).hexdigest())


#: Sliding window (rate limits, behaviour tracking): see `lua/sliding_window.lua`.
SLIDING_WINDOW = load_script("sliding_window")

#: Atomic add/remove of one string in a sorted JSON array (custom patterns): see
#: `lua/json_set_update.lua`.
JSON_SET_UPDATE = load_script("json_set_update")
