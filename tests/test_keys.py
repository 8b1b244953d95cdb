"""Key layout, glob escaping and validation (shared by both faces)."""

from __future__ import annotations

import fakeredis
import pytest
from hypothesis import given
from hypothesis import strategies as st

from guard_core._shared.keys import (
    build_key,
    build_pattern,
    escape_glob,
    validate_ttl,
    validate_value,
)
from guard_core._shared.validation import MAX_TTL


def test_build_key_layout() -> None:
    assert (
        build_key("guard_core:", "banned_ips", "192.168.1.1") == "guard_core:banned_ips:192.168.1.1"
    )
    assert (
        build_key("p:", "rate_limit", "rate:10.0.0.1:/login") == "p:rate_limit:rate:10.0.0.1:/login"
    )


def test_escape_glob() -> None:
    assert escape_glob("a*:") == "a\\*:"
    assert escape_glob("[x]?\\") == "\\[x\\]\\?\\\\"
    assert escape_glob("plain:") == "plain:"
    assert build_pattern("a*:", "banned_ips:*") == "a\\*:banned_ips:*"


@given(st.text(min_size=1, max_size=40).filter(lambda s: "\x00" not in s))
def test_escaped_prefix_matches_only_itself_in_redis(prefix: str) -> None:
    try:
        prefix.encode("utf-8")
    except UnicodeEncodeError:
        return
    client = fakeredis.FakeRedis(decode_responses=True)
    client.set(prefix + "ns:k", "1")
    # neighbours an unescaped prefix could match: glob characters replaced, or a leading char
    client.set("".join("Q" if ch in "*?[]\\" else ch for ch in prefix) + "ns:k", "1")
    client.set("Z" + prefix + "ns:k", "1")
    found = list(client.scan_iter(match=build_pattern(prefix, "*")))
    assert all(key.startswith(prefix) for key in found)
    assert prefix + "ns:k" in found


@pytest.mark.parametrize("ttl", [None, 1, 60, MAX_TTL])
def test_valid_ttls(ttl: int | None) -> None:
    assert validate_ttl(ttl) == ttl


@pytest.mark.parametrize(
    ("ttl", "error"),
    [
        (0, ValueError),
        (-1, ValueError),
        (MAX_TTL + 1, ValueError),
        (1.0, TypeError),
        (True, TypeError),
        ("5", TypeError),
    ],
)
def test_invalid_ttls(ttl: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="ttl"):
        validate_ttl(ttl)


@pytest.mark.parametrize("value", ["", "text", b"\x00bytes", 0, -3, 2.5])
def test_valid_values(value: object) -> None:
    assert validate_value(value) == value


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (None, TypeError),
        (True, TypeError),
        ([], TypeError),
        (object(), TypeError),
        (float("nan"), ValueError),
        ("\udcff", ValueError),
    ],
)
def test_invalid_values(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="value"):
        validate_value(value)
