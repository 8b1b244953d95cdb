"""`manage.py guard ...`: the `guard-core` command on `settings.GUARD_CORE["config"]`.

The same click group as `guard-core` (`guard_core.cli.framework`); its arguments go to it
untouched (`manage.py guard bans list --json`, `manage.py guard --help`).
"""

from __future__ import annotations

import os
from argparse import REMAINDER, ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from guard_core.models import SecurityConfig


def _config() -> SecurityConfig:
    from guard_core.adapters.django import process_guard

    return process_guard().config


class Command(BaseCommand):
    help = "The guard-core command (status, bans, ratelimit, ...) on GUARD_CORE's config."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("args", nargs=REMAINDER, help="guard-core's arguments")

    def run_from_argv(self, argv: list[str]) -> None:
        # click parses its own arguments (--help included): argparse never sees them
        self._run(argv[2:], f"{os.path.basename(argv[0])} {argv[1]}", standalone=True)

    def handle(self, *args: Any, **options: Any) -> None:
        self._run(list(args), "manage.py guard", standalone=False)

    def _run(self, args: list[str], prog: str, *, standalone: bool) -> None:
        try:
            from guard_core.cli.framework import framework_group
        except ImportError as exc:
            raise CommandError(
                f"the guard command needs the [cli] extra ({exc.name} is not installed): "
                "pip install 'guard-core-redis[cli]'"
            ) from None
        group = framework_group("guard", _config)
        if standalone:
            group.main(args=args, prog_name=prog)
            return
        import click

        try:
            group.main(args=args, prog_name=prog, standalone_mode=False)
        except click.ClickException as exc:
            raise CommandError(exc.format_message(), returncode=exc.exit_code) from None
