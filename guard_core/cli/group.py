"""The `guard-core` group: its options, the session the commands share, and the helpers
every command uses (one-line errors, `--json`).

Exit codes: 0 done; 1 an expected failure (Redis unreachable, bad address, bad pattern, a
setting that cannot be read), printed as one line on stderr; 2 a usage error.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from guard_core.cli.settings import SettingError, build_config, env_name, parse_assignment
from guard_core.cli.state import (
    CommandError,
    describe_failure,
    require_redis,
    where,
)
from guard_core.exceptions import GuardRedisError
from guard_core.models import SecurityConfig
from guard_core.version import __version__
from guard_core_sync import Guard

F = TypeVar("F", bound=Callable[..., Any])
BAN_REASON = "banned with the guard-core command"


class OneLineError(click.ClickException):
    """An expected failure: `guard-core: error: ...` on stderr, exit status 1 (2 for a
    command whose status answers a question: `answering`)."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        line = " ".join(self.message.split())  # one line, whatever the message held
        click.echo(f"guard-core: error: {line}", err=True)


class InputError(OneLineError):
    """Input no application could have given (a window of 0 s, a limit of none): one line,
    exit status 2, as a usage error."""

    exit_code = 2


class AnswerError(OneLineError):
    """An expected failure of a command whose status answers a question: exit status 2."""

    exit_code = 2


@dataclass
class Session:
    """What the group's options set for every command."""

    overrides: dict[str, str] = field(default_factory=dict)
    as_json: bool = False
    #: An application's configuration (`flask guard`, `manage.py guard`): the flags apply
    #: over it, and the GUARD_CORE_* variables are not read.
    base: Callable[[], SecurityConfig] | None = None

    def config(self) -> SecurityConfig:
        if self.base is not None:
            return build_config({}, self.overrides, base=self.base())
        return build_config(os.environ, self.overrides)

    @contextmanager
    def guard(self, *, require: bool = True) -> Iterator[Guard]:
        """A sync `Guard` on the configured Redis; fails with one line unless it answers."""
        with Guard(self.config(), serving=False) as guard:
            if require:
                require_redis(guard)
            yield guard


@contextmanager
def answering() -> Iterator[None]:
    """For a command whose exit status answers a question, as grep's does (`bans check`:
    0 banned, 1 not; `patterns test`: 0 a match, 1 none): an expected failure exits 2."""
    try:
        yield
    except (CommandError, SettingError, ValueError, TypeError) as exc:
        raise AnswerError(str(exc)) from None
    except GuardRedisError as exc:
        raise AnswerError(f"Redis failed: {exc.detail}") from None


def failures(guard: Guard) -> int:
    """Redis operations that failed so far (answered from memory by the subsystems)."""
    return guard.redis.failed_operations


def require_no_failure(guard: Guard, before: int) -> None:
    """A question answered while Redis failed (the library then answers from memory, which
    this process barely has) is no answer: fail instead."""
    if failures(guard) != before or not guard.redis.available:
        raise CommandError(
            f"Redis at {where(guard)} failed while answering ({describe_failure(guard)}; -v "
            "shows the log): the answer would come from this process's empty memory"
        )


class GuardGroup(click.Group):
    """Turns the expected failures of every command below into one line and exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (CommandError, SettingError) as exc:
            raise OneLineError(str(exc)) from None
        except GuardRedisError as exc:
            raise OneLineError(f"Redis failed: {exc.detail}") from None
        except (ValueError, TypeError) as exc:  # bad input, named by the library
            raise OneLineError(str(exc)) from None


def json_option(func: F) -> F:
    """`--json` on a command (also accepted before the command name)."""

    def _set(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            ctx.ensure_object(Session).as_json = True

    option = click.option(
        "--json",
        "as_json",
        is_flag=True,
        expose_value=False,
        callback=_set,
        help="Machine-readable output (JSON) instead of tables.",
    )
    return option(func)


@contextmanager
def _logging(verbose: bool) -> Iterator[None]:
    """Library logs go to stderr with -v; otherwise they are kept off the terminal (the
    command reports failures itself, in one line)."""
    logger = logging.getLogger("guard_core")
    handler: logging.Handler
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("guard-core: log: %(levelname)s %(name)s: %(message)s")
        )
    else:
        handler = logging.NullHandler()
    level = logger.level
    logger.addHandler(handler)
    if verbose:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@click.group(cls=GuardGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="guard-core")
@click.option("--redis-url", metavar="URL", help=f"Redis URL (or {env_name('redis_url')}).")
@click.option(
    "--redis-prefix",
    "--prefix",
    metavar="PREFIX",
    help=f"Key prefix of the application (or {env_name('redis_prefix')}).",
)
@click.option(
    "--set",
    "assignments",
    metavar="FIELD=VALUE",
    multiple=True,
    help="Any SecurityConfig field, e.g. --set redis_socket_timeout=0.5 "
    "(or GUARD_CORE_<FIELD> in the environment).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (JSON).")
@click.option("-v", "--verbose", is_flag=True, help="Show the library's log on stderr.")
@click.pass_context
def cli(
    ctx: click.Context,
    redis_url: str | None,
    redis_prefix: str | None,
    assignments: tuple[str, ...],
    as_json: bool,
    verbose: bool,
) -> None:
    """Inspect and change the security state guard-core shares through Redis.

    Settings come from GUARD_CORE_<FIELD> environment variables named after the
    SecurityConfig fields (GUARD_CORE_REDIS_URL, GUARD_CORE_REDIS_PREFIX, ...), then from
    the flags. Credentials in the URL are never printed.
    """
    session = ctx.ensure_object(Session)
    session.as_json = session.as_json or as_json
    for text in assignments:
        name, value = parse_assignment(text)
        session.overrides[name] = value
    if redis_url is not None:
        session.overrides["redis_url"] = redis_url
    if redis_prefix is not None:
        session.overrides["redis_prefix"] = redis_prefix
    ctx.with_resource(_logging(verbose))


def pending_writes(guard: Guard, subsystem: str) -> int:
    """Writes `subsystem` holds because Redis did not take them (from `Guard.health()`)."""
    return int(guard.health().pending_writes.get(subsystem, 0))
