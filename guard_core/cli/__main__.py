"""`python -m guard_core.cli`: the `guard-core` command."""

from guard_core.cli import main

main()
