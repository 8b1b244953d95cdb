"""Hostile-input strategies and the documented rules they are checked against (both faces).

Each `*_error` function states what the documentation promises for one argument: `None`
when the argument is valid, else the exception type it must raise. Messages start with the
argument's name (`"ttl must be ..."`), which `assert_names` checks.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from decimal import Decimal
from fractions import Fraction
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Any

import redis
from hypothesis import strategies as st
from redis.client import NEVER_DECODE

from guard_core._shared.validation import MAX_COUNT, MAX_TTL

GLOB_META = "*?[]\\^-"
#: Characters that break naive key building, glob escaping or header writing.
SPECIAL_CHARS = [
    *GLOB_META,
    ":",
    "/",
    "%",
    ";",
    ",",
    "'",
    '"',
    " ",
    "\t",
    "\n",
    "\r",
    "\x00",
    "\x01",
    "\x1b",
    "\x7f",
    "\x85",
    "\xa0",
    "\u200b",
    "\u2028",
    "\ufeff",
    "\uffff",
    "é",
    "ß",
    "\U0001f600",
    "\U00010000",
    "\U0010ffff",
    "\ud800",
    "\udc80",
    "\udfff",
]

hostile_chars = st.one_of(
    st.sampled_from(SPECIAL_CHARS),
    st.characters(),  # any code point but lone surrogates
    st.characters(categories=["Cs"]),  # lone surrogates: not encodable as UTF-8
    st.characters(min_codepoint=0x10000),  # astral
)
short_text = st.text(hostile_chars, max_size=24)
#: Up to 10k characters, built by repetition so generation stays cheap.
long_text = st.builds(
    lambda chunk, times: (chunk * times)[:10_000],
    st.text(hostile_chars, min_size=1, max_size=12),
    st.integers(min_value=100, max_value=10_000),
)
hostile_text = st.one_of(st.just(""), short_text, short_text, long_text)
not_str = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.binary(max_size=8),
    st.lists(st.text(max_size=3), max_size=2),
    st.builds(object),
    st.sampled_from([bytearray(b"k"), ("k",), {"k": "v"}, IPv4Address("192.0.2.1")]),
)
hostile_str_or_not = st.one_of(hostile_text, hostile_text, not_str)


class Level(enum.IntEnum):
    HIGH = 7


class ShoutingFloat(float):
    """A float whose repr is not a number (numpy 2 scalars print like this)."""

    def __repr__(self) -> str:
        return f"ShoutingFloat({float(self)!r})"


BIG_INTS = [2**63, -(2**63), 10**4299, 10**4300, -(10**5000)]

counts = st.one_of(
    st.integers(min_value=-3, max_value=1000),
    st.sampled_from([0, 1, MAX_COUNT, MAX_COUNT + 1, 10**30, 10**5000, -(10**5000), Level.HIGH]),
    st.sampled_from([True, False, 1.0, 5.5, math.nan, "5", b"5", Decimal(5), None]),
)
seconds = st.one_of(
    st.floats(min_value=0.5, max_value=10_000),
    st.floats(),
    st.integers(min_value=-3, max_value=10**13),
    st.sampled_from([0, 0.001, 0.0009, 1e-300, MAX_TTL, MAX_TTL + 1, 1e15, 1e300, -0.0]),
    st.sampled_from([10**400, -(10**400), 10**5000, MAX_TTL + 0.5]),
    st.sampled_from([math.nan, math.inf, -math.inf, True, "60", Decimal(60), Level.HIGH, None]),
)
#: Identifiers, endpoints and other names: mostly plain, often hostile.
names = st.one_of(
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=12), hostile_str_or_not
)

ttls = st.one_of(
    st.none(),
    st.integers(min_value=-10, max_value=10**10),
    st.sampled_from(
        [0, -1, 1, 2, MAX_TTL, MAX_TTL + 1, 2**63, -(2**63), 10**100, -(10**5000), 10**5000]
    ),
    st.sampled_from([True, False, Level.HIGH, 1.0, 0.5, math.nan, math.inf, "60", Decimal(60)]),
    st.floats(),
)

values = st.one_of(
    hostile_text,
    st.binary(max_size=40),  # often not UTF-8
    st.integers(),
    st.sampled_from(BIG_INTS),
    st.floats(),  # nan and inf included
    st.none(),
    st.booleans(),
    st.builds(object),
    st.sampled_from(
        [
            Level.HIGH,
            ShoutingFloat(1.5),
            bytearray(b"x"),
            memoryview(b"x"),
            Decimal("1.5"),
            Fraction(1, 2),
            1 + 2j,
            ["x"],
            {"x": 1},
        ]
    ),
)


# -- the documented rules ---------------------------------------------------------------------


def utf8_error(text: str) -> type[Exception] | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return ValueError
    return None


def text_error(value: object, *, allow_empty: bool = False) -> type[Exception] | None:
    """A non-empty (unless `allow_empty`) UTF-8 encodable str."""
    if not isinstance(value, str):
        return TypeError
    if not value and not allow_empty:
        return ValueError
    return utf8_error(value)


def namespace_error(value: object) -> type[Exception] | None:
    if isinstance(value, str) and ":" in value:
        return ValueError
    return text_error(value)


def key_error(value: object) -> type[Exception] | None:
    return text_error(value)


def pattern_error(value: object) -> type[Exception] | None:
    return text_error(value, allow_empty=True)


def ttl_error(value: object) -> type[Exception] | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        return TypeError
    return None if 1 <= value <= MAX_TTL else ValueError


def value_error(value: object) -> type[Exception] | None:
    if isinstance(value, bool) or not isinstance(value, str | bytes | int | float):
        return TypeError
    if isinstance(value, float):
        return None if math.isfinite(value) else ValueError
    if isinstance(value, int):
        try:
            str(int(value))
        except ValueError:  # more digits than Python converts to text
            return ValueError
        return None
    if isinstance(value, bytes):
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            return ValueError
        return None
    return utf8_error(value)


def stored_bytes(value: str | bytes | int | float) -> bytes:
    """What Redis holds for a valid value: the text of the plain number, or the UTF-8."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, float):
        return repr(float(value)).encode()
    return str(int(value)).encode()


def prefix_error(value: object) -> type[Exception] | None:
    """`SecurityConfig.redis_prefix`: a non-empty str without whitespace or control chars."""
    if not isinstance(value, str) or not value:
        return ValueError
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        return ValueError
    return None


def count_error(value: object) -> type[Exception] | None:
    """Limits and thresholds: an int in 1..MAX_COUNT."""
    if isinstance(value, bool) or not isinstance(value, int):
        return TypeError
    return None if 1 <= value <= MAX_COUNT else ValueError


def seconds_error(value: object) -> type[Exception] | None:
    """Windows: a finite number of seconds in 0.001..MAX_TTL."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return TypeError
    return None if 0.001 <= value <= MAX_TTL else ValueError  # NaN fails the comparison


def optional(rule: Any) -> Any:
    """`rule`, with `None` (use the configured default) also valid."""
    return lambda value: None if value is None else rule(value)


def expected_errors(**arguments: object) -> dict[str, type[Exception]]:
    """Each invalid argument's name and exception type, from the rules above."""
    rules = {
        "namespace": namespace_error,
        "key": key_error,
        "pattern": pattern_error,
        "ttl": ttl_error,
        "value": value_error,
    }
    found = {}
    for name, value in arguments.items():
        error = rules[name](value)
        if error is not None:
            found[name] = error
    return found


def assert_names(exc: BaseException, expected: dict[str, type[Exception]]) -> None:
    """`exc` is the error promised for one of the invalid arguments, and names it first."""
    assert type(exc) in (ValueError, TypeError), f"{type(exc).__name__}: {exc}"
    message = str(exc)
    named = [name for name in expected if message.startswith(name + " ")]
    assert named, f"message {message[:120]!r} names none of {sorted(expected)}"
    assert any(type(exc) is expected[name] for name in named), (
        f"{type(exc).__name__} for {named}, expected {[expected[n].__name__ for n in named]}"
    )


# -- IP addresses in every textual form ----------------------------------------------------


def canonical(address: IPv4Address | IPv6Address) -> str:
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def textual_forms(address: IPv4Address | IPv6Address) -> list[str]:
    """Every way of writing `address` that must mean the same client."""
    if isinstance(address, IPv4Address):
        mapped = IPv6Address(int(address) | 0xFFFF_0000_0000)
        return [
            str(address),
            f"::ffff:{address}",
            f"::FFFF:{address}",
            f"0:0:0:0:0:ffff:{address}",
            mapped.compressed,
            mapped.exploded,
            mapped.exploded.upper(),
        ]
    # the eight groups in hex, built here: Python 3.13 writes an IPv4-mapped address's last
    # 32 bits dotted in its own texts (`::ffff:1.2.3.4`, 3.11 and 3.12 `::ffff:102:304`)
    groups = [f"{(int(address) >> (16 * (7 - k))) & 0xFFFF:04x}" for k in range(8)]
    tail = IPv4Address(int(address) & 0xFFFF_FFFF)
    return [
        address.compressed,
        address.compressed.upper(),
        address.exploded,
        address.exploded.upper(),
        ":".join(groups),
        ":".join(group.lstrip("0") or "0" for group in groups),
        ":".join(groups[:6]) + f":{tail}",
        "".join(ch.upper() if i % 2 else ch for i, ch in enumerate(":".join(groups))),
    ]


def ip_text_error(value: object) -> type[Exception] | None:
    """What parsing promises for an IP address text."""
    if isinstance(value, IPv4Address | IPv6Address):
        return None
    if not isinstance(value, str):
        return TypeError
    if "%" in value:
        return ValueError
    try:
        ip_address(value)
    except ValueError:
        return ValueError
    return None


_MAPPED = IPv6Network("::ffff:0:0/96")


def network_text_error(value: str) -> type[Exception] | None:
    """What parsing promises for a CIDR text (host bits must be zero)."""
    if "%" in value:
        return ValueError
    try:
        ip_network(value, strict=True)
    except ValueError:
        return ValueError
    return None


def canonical_network(value: str) -> str:
    network = ip_network(value, strict=True)
    if isinstance(network, IPv6Network) and network.prefixlen >= 96 and network.subnet_of(_MAPPED):
        mapped = network.network_address.ipv4_mapped
        assert mapped is not None
        return str(IPv4Network((mapped, network.prefixlen - 96)))
    return str(network)


def _mangle(text: str, insert: str, at: int) -> str:
    at = at % (len(text) + 1)
    return text[:at] + insert + text[at:]


#: Texts near valid addresses: a character inserted, a zone, brackets, a port, whitespace.
ip_like_text = st.one_of(
    st.builds(_mangle, st.ip_addresses().map(str), hostile_chars, st.integers()),
    st.builds(
        lambda a, suffix: str(a) + suffix,
        st.ip_addresses(),
        st.sampled_from(["%eth0", "%", "/", "/33", "/129", ":80", " ", "\n", "\x00", "."]),
    ),
    st.builds(lambda a: f"[{a}]", st.ip_addresses()),
    st.builds(lambda a: f" {a}", st.ip_addresses()),
    st.sampled_from(
        [
            "",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "256.1.1.1",
            "1.2.3.-4",
            "\uff11.\uff12.\uff13.\uff14",  # fullwidth digits
            "\u0661.\u0662.\u0663.\u0664",  # Arabic-Indic digits
            "0x7f.0.0.1",
            "2130706433",
            ":::",
            "1::2::3",
            "fe80::1%eth0",
            "::ffff:1.2.3.4%1",
            "::ffff:256.1.1.1",
            "g::1",
            "1:2:3:4:5:6:7:8:9",
        ]
    ),
    hostile_text,
)


# -- Redis inspection -----------------------------------------------------------------------


def raw_get(inspect: redis.Redis, full_key: str) -> bytes | None:
    """The bytes Redis holds at `full_key` (no decoding, so any value can be compared)."""
    found: bytes | None = inspect.execute_command(  # type: ignore[no-untyped-call]
        "GET", full_key, **{NEVER_DECODE: True}
    )
    return found


def all_keys(inspect: redis.Redis) -> set[str]:
    return set(inspect.scan_iter(match="*", count=1000))


def near_misses(prefix: str) -> set[str]:
    """Keys outside `prefix` that an unescaped or badly escaped prefix would match."""
    found = {
        prefix[:-1],
        prefix[:-1] + "X" if prefix else "X",
        "X" + prefix,
        prefix.swapcase(),
        "".join("Q" if ch in GLOB_META else ch for ch in prefix),
        "".join(ch for ch in prefix if ch not in GLOB_META),
        prefix.replace("\\", ""),
        prefix.replace("\\", "\\\\"),
        prefix.replace("*", "").replace("?", "").replace("[", "").replace("]", ""),
    }
    for index, ch in enumerate(prefix):
        if ch in GLOB_META:
            found.add(prefix[:index] + "zz" + prefix[index + 1 :])
            found.add(prefix[:index] + prefix[index + 1 :])
    return {key + suffix for key in found for suffix in ("", "ns:k", ":x")}


#: Keys outside the default prefix `guard_core:` that must survive anything the library does.
FIXED_CANARIES = (
    "other:canary",
    "guard_core",
    "guard_corens:k",
    "guard_core_other:k",
    "guard_core;x",
    "Guard_core:x",
    "guard_cor:x",
    "xguard_core:x",
    "\\guard_core:x",
    "guard_core\\:x",
    "guard_core*",
    "*",
    "?",
    "[",
    "\\",
)


def outside(prefix: str, keys: Iterable[str]) -> set[str]:
    """The keys of `keys` that are valid UTF-8 and not under `prefix`."""
    return {key for key in keys if not key.startswith(prefix) and utf8_error(key) is None}


def write_canaries(inspect: redis.Redis, keys: Iterable[str]) -> dict[str, Any]:
    """Write each key (with a distinct value) and return what was written."""
    written = {key: f"canary-{index}" for index, key in enumerate(sorted(set(keys)))}
    if written:
        inspect.mset(written)
    return written


def assert_canaries_survive(inspect: redis.Redis, written: dict[str, Any]) -> None:
    keys = sorted(written)
    if keys:
        assert inspect.mget(keys) == [written[key] for key in keys]
