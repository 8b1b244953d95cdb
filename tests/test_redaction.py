"""Credentials are masked wherever guard-core writes text."""

from __future__ import annotations

import pytest

from guard_core.redaction import Redactor, escape_control, redact_url, url_secrets


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://localhost:6379", "redis://localhost:6379"),
        ("redis://user:pw@host:1/0", "redis://***@host:1/0"),
        ("redis://:pw@host", "redis://***@host"),
        ("rediss://only-user@host", "rediss://***@host"),
        ("redis://host/0?password=pw&db=1", "redis://host/0?password=***&db=1"),
        (None, None),
    ],
)
def test_redact_url(url: str | None, expected: str | None) -> None:
    assert redact_url(url) == expected


def test_redactor_scrubs_raw_and_percent_decoded_secrets() -> None:
    redactor = Redactor.for_url("redis://op:p%40ss%3Aword@h:1")
    assert "p@ss:word" in url_secrets("redis://op:p%40ss%3Aword@h:1")
    text = redactor.scrub("AUTH op p@ss:word failed; url redis://op:p%40ss%3Aword@h:1")
    assert "p@ss:word" not in text
    assert "p%40ss%3Aword" not in text
    assert Redactor.for_url("redis://h:1").scrub("nothing to hide") == "nothing to hide"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain text, C:\\path", "plain text, C:\\path"),
        ("xss\r\nCRITICAL forged", "xss\\r\\nCRITICAL forged"),
        ("tab\there", "tab\\there"),
        ("nul\x00 esc\x1b[31m del\x7f", "nul\\x00 esc\\x1b[31m del\\x7f"),
        ("c1\x85 ls\u2028 ps\u2029 nbsp\xa0", "c1\\x85 ls\\u2028 ps\\u2029 nbsp\\xa0"),
        ("bidi\u202egnp.exe", "bidi\\u202egnp.exe"),
        ("lone\ud800", "lone\\ud800"),
        ("café 漢字 😀", "café 漢字 😀"),
        ("", ""),
    ],
)
def test_escape_control(text: str, expected: str) -> None:
    assert escape_control(text) == expected
    assert escape_control(expected) == expected  # escaped text stays as it is
    assert "\n" not in escape_control(text) and "\r" not in escape_control(text)
    escape_control(text).encode("utf-8")  # no lone surrogate left to break a log handler
