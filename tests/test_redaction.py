"""Credentials are masked wherever guard-core writes text."""

from __future__ import annotations

import pytest

from guard_core.redaction import Redactor, redact_url, url_secrets


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
