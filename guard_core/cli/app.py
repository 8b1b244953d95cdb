"""The `guard-core` command (click), over the sync face: the group (`guard_core.cli.group`)
with every command of `guard_core.cli.commands` registered on it.

Exit codes: 0 done; 1 an expected failure (Redis unreachable, bad address, bad pattern, a
setting that cannot be read), printed as one line on stderr; 2 a usage error.
"""

from __future__ import annotations

import guard_core.cli.commands  # noqa: F401  (registers the commands)
from guard_core.cli.group import cli

__all__ = ["cli", "main"]


def main() -> None:
    cli(prog_name="guard-core")
