"""The `guard-core` command (the `[cli]` extra): inspect and change the shared state.

Written by hand against the sync face (`guard_core_sync`); it is not part of the generated
tree. Importing this package needs nothing beyond the library: click and rich are imported
when the command runs, so that a missing extra is one clear line instead of a traceback.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Entry point of the `guard-core` console script."""
    try:
        from guard_core.cli.app import cli
    except ImportError as exc:  # click or rich missing
        print(
            f"guard-core: the command needs the [cli] extra ({exc.name} is not installed): "
            "pip install 'guard-core-redis[cli]'",
            file=sys.stderr,
        )
        sys.exit(1)
    cli(prog_name="guard-core")
