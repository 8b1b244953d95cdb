"""The commands of `guard-core`, one module per group; importing this package registers them
on the group (`guard_core.cli.group.cli`)."""

from guard_core.cli.commands import allow, bans, headers, keys, patterns, ratelimit, status, tools

__all__ = ["allow", "bans", "headers", "keys", "patterns", "ratelimit", "status", "tools"]
