"""The ban-list format of `guard-core bans import` and `bans export`.

One ban per line, whitespace-separated:

    ADDRESS [DURATION [REASON]]

- ADDRESS: an IP address or a CIDR network with its host bits zero (`203.0.113.7`,
  `198.51.100.0/24`, `2001:db8::/32`);
- DURATION: seconds (`3600`) or a number with a unit (`90s`, `30m`, `2h`, `7d`, `1w`), or `-`
  for the default (`--duration`, else `ip_ban_default_duration`);
- REASON: the rest of the line (default `--reason`); or a JSON string in double quotes, which
  may hold any text (`#`, `;`, quotes, escapes): `bans export` writes reasons so.
- `#` or `;` starts a comment, to the end of the line, outside a quoted reason; blank lines
  and comment lines are skipped. So FireHOL netsets (`# ...` headers, one network a line)
  and Spamhaus DROP lists (`1.10.16.0/20 ; SBL256894`) are read as they are.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from guard_core._shared.addresses import is_loopback, parse_ip, parse_network
from guard_core._shared.storage.memory_bans import BanRecord
from guard_core._shared.validation import MAX_TTL
from guard_core.cli import render

_SPECIAL = re.compile(r'["#;]')
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
#: An IPv4 address already in canonical form (no leading zeros): most lines of a big list,
#: checked here at a tenth of the cost of parsing it.
_CANONICAL_V4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class BadLine:
    """A line that is no ban: its number (from 1) and why."""

    number: int
    error: str


@dataclass(frozen=True)
class BanList:
    """What a ban list holds: the bans (canonical target, seconds, reason) in file order, and
    the lines that are no bans."""

    bans: list[tuple[str, int, str]]
    bad: list[BadLine]
    lines: int


def split_line(line: str) -> tuple[str, str | None, str | None] | None:
    """(address, duration, reason) as written, None for a blank or comment line; ValueError
    for a line whose quoting is wrong."""
    quoted: str | None = None
    special = _SPECIAL.search(line)
    head = line if special is None else line[: special.start()]
    if special is not None and special.group() == '"':
        try:
            quoted, end = _DECODER.raw_decode(line, special.start())
        except ValueError:
            raise ValueError("the quoted reason is not a JSON string") from None
        rest = line[end:].strip()
        if rest and rest[0] not in "#;":
            raise ValueError(f"text after the quoted reason: {rest[:40]!r}")
    fields = head.split(None, 2)
    if not fields:
        if quoted is not None:
            raise ValueError("a reason without an address")
        return None
    duration = fields[1] if len(fields) > 1 else None
    reason = fields[2].strip() if len(fields) > 2 else None
    if quoted is not None:
        if duration is None or reason is not None:
            raise ValueError("a quoted reason must come third, after the duration (or -)")
        reason = quoted
    return fields[0], None if duration == "-" else duration, reason


def canonical_target(text: str) -> str:
    """The canonical form of an address or CIDR (ValueError naming a bad one, or loopback)."""
    if _CANONICAL_V4.fullmatch(text) and not text.startswith("127."):
        return text
    parsed = parse_network(text) if "/" in text else parse_ip(text)
    if is_loopback(parsed):
        raise ValueError(f"refusing to ban {parsed}: loopback would lock the operator out")
    return str(parsed)


def read_bans(lines: Iterable[bytes], *, duration: int, reason: str) -> BanList:
    """Parse a ban list (lines of bytes, UTF-8); `duration` and `reason` are the defaults."""
    bans: list[tuple[str, int, str]] = []
    bad: list[BadLine] = []
    durations: dict[str, int] = {}
    number = 0
    for number, raw in enumerate(lines, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            bad.append(BadLine(number, "not UTF-8 text"))
            continue
        if number == 1:
            text = text.removeprefix("\ufeff")  # a byte-order mark
        try:
            found = split_line(text)
            if found is None:
                continue
            target, written, why = found
            seconds = duration
            if written is not None:
                seconds = durations.get(written) or _duration(written)
                durations[written] = seconds
            bans.append((canonical_target(target), seconds, reason if why is None else why))
        except ValueError as exc:
            bad.append(BadLine(number, str(exc)))
    return BanList(bans=bans, bad=bad, lines=number)


def _duration(text: str) -> int:
    seconds = render.parse_duration(text)
    if seconds > MAX_TTL:
        raise ValueError(f"duration must be at most {MAX_TTL} seconds (got {text!r})")
    return seconds


def export_lines(records: Iterable[BanRecord], now: float) -> Iterator[str]:
    """Ban records as lines `bans import` reads back: the target, the seconds left (rounded
    up) and the reason, quoted."""
    for record in records:
        left = max(1, math.ceil(record.expires_at - now))
        yield f"{record.target} {left} {json.dumps(record.reason, ensure_ascii=False)}"
