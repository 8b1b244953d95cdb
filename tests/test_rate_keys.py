"""Window keys of rate limits, and the memo that keeps them: bounded, canonical, and never
remembering what it refused."""

from __future__ import annotations

import pytest

from guard_core._shared.policy.rate_keys import KeyMemo, window_key


def test_keys_are_canonical_and_unambiguous() -> None:
    assert window_key("192.0.2.1", "") == "rate:192.0.2.1"
    assert window_key("::ffff:192.0.2.1", "") == "rate:192.0.2.1"
    assert window_key("2001:DB8::1", "/login") == "rate:2001%3Adb8%3A%3A1:/login"
    assert window_key("user:1", "") != window_key("user", "1")


def test_memo_stays_within_its_bound_and_keeps_canonicalising() -> None:
    memo = KeyMemo(max_keys=3)
    for i in range(10):
        identifier = f"::ffff:198.51.100.{i}" if i % 2 else f"198.51.100.{i}"
        assert memo.key(identifier, "/e" if i % 3 else "") == window_key(
            identifier, "/e" if i % 3 else ""
        )
        assert len(memo) <= 3
    # remembered under the form it was given in, with the key of the client it names
    memo.key("::ffff:192.0.2.7", "")
    assert memo.plain("::ffff:192.0.2.7") == "rate:192.0.2.7"
    assert memo.plain("192.0.2.7") is None  # not given yet
    assert memo.key("192.0.2.7", "") == "rate:192.0.2.7"
    assert memo.paired(("192.0.2.7", "")) is None  # pairs and plain identifiers kept apart


@pytest.mark.parametrize(
    ("identifier", "endpoint", "error"),
    [
        (b"192.0.2.1", "", TypeError),
        (None, "", TypeError),
        ("", "", ValueError),
        ("192.0.2.1", None, TypeError),
        ("192.0.2.1", b"/e", TypeError),
        ("\ud800", "", ValueError),
        ("192.0.2.1", "/\udfff", ValueError),
    ],
)
def test_memo_refuses_bad_text_every_time(
    identifier: object, endpoint: object, error: type
) -> None:
    memo = KeyMemo(max_keys=8)
    for _ in range(2):
        with pytest.raises(error):
            memo.key(identifier, endpoint)  # type: ignore[arg-type]
    assert len(memo) == 0
