"""How the command shows things: rich tables for people, JSON for programs."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def console() -> Console:
    """A console on the current stdout (so test runners capture it), no auto-highlighting."""
    return Console(highlight=False, soft_wrap=False)


def emit(as_json: bool, data: Any, render: Callable[[Console], None]) -> None:
    """JSON of `data` on stdout, or `render` for a person."""
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        render(console())


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    whole: Sequence[str] = (),
) -> Table:
    """A table; the columns named in `whole` are never folded (the others are, to fit)."""
    result = Table(
        title=title,
        title_justify="left",
        show_edge=False,
        header_style="bold",
        min_width=len(title) if title else None,
    )
    for column in columns:
        result.add_column(column, overflow="fold", no_wrap=column in whole)
    for row in rows:
        result.add_row(*("" if cell is None else str(cell) for cell in row))
    return result


def when(epoch: float) -> str:
    """Unix time as `2026-11-26 13:40:05 UTC`."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def span(seconds: float | None) -> str:
    """A duration for people: `45 s`, `12 min 5 s`, `3 h 20 min`, `2 d 1 h`; `-` for none."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"


def parse_duration(text: str) -> int:
    """`3600`, `90s`, `15m`, `2h`, `1d`, `1w` -> seconds; ValueError otherwise."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(
            f"duration must be a whole number of seconds or like 15m, 2h, 1d (got {text!r})"
        )
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
    if seconds < 1:
        raise ValueError("duration must be at least 1 second")
    return seconds
