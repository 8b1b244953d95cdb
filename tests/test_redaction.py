"""Credentials are masked wherever guard-core writes text."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guard_core._shared.redaction import Redactor, escape_control, redact_url, url_secrets


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


# -- any string that looks like a URL, parsable or not ---------------------------------------


schemes = st.sampled_from(["redis", "rediss", "unix", "http"])
hosts = st.from_regex(r"[a-z0-9][a-z0-9.\-]{0,20}", fullmatch=True)
ports = st.integers(0, 99999)
# every password starts with "S3": nothing else in the generated URLs holds an upper-case S
passwords = st.text(min_size=0, max_size=20).map(lambda rest: "S3" + rest)
users = st.text(max_size=10).map(lambda user: user.replace(":", ""))  # the first ":" ends it


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://app:12345#S3cr3t@host:6379/0", "redis://***@host:6379/0"),
        ("redis://app:pa/ss@host:6379/0", "redis://***@host:6379/0"),
        ("redis://app:pa?ss@host", "redis://***@host"),
        ("redis://app:p@ss@host", "redis://***@host"),
        ("redis://:[S3cr3t@host", "redis://***@host"),
        ("app:S3cr3t@host:6379", "***@host:6379"),
        ("redis://host/0?password=a@b#c&db=1", "redis://***&db=1"),
        ("redis://host/0?pass%77ord=x#y&db=2", "redis://host/0?pass%77ord=***&db=2"),
        ("unix:///tmp/r.sock?db=0&password=zz", "unix:///tmp/r.sock?db=0&password=***"),
        ("", ""),
    ],
)
def test_redact_url_needs_no_parsable_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@given(schemes, users, passwords, hosts, ports, st.booleans())
def test_no_userinfo_password_survives(
    scheme: str, user: str, password: str, host: str, port: int, encoded: bool
) -> None:
    shown = quote(password, safe="") if encoded else password
    url = f"{scheme}://{user}:{shown}@{host}:{port}/0"
    redacted = redact_url(url)
    assert redacted is not None
    assert "S3" not in redacted
    assert redacted == f"{scheme}://***@{host}:{port}/0"  # the rest is kept as it was
    scrubbed = Redactor.for_url(url).scrub(f"error at {url}: AUTH {password} refused")
    assert "S3" not in scrubbed


@given(schemes, hosts, st.sampled_from(["password", "PassWord", "token", "api_key"]), passwords)
def test_no_secret_query_value_survives(scheme: str, host: str, name: str, value: str) -> None:
    value = value.replace("&", "").replace(";", "")  # they end a value: no way to tell
    url = f"{scheme}://{host}/0?db=1&{name}={value}"
    redacted = redact_url(url)
    assert redacted is not None and "S3" not in redacted
    assert Redactor.for_url(url).scrub(f"{url} {value}").count("S3") == 0


@given(st.text(max_size=60))
def test_redaction_takes_any_text(text: str) -> None:
    redacted = redact_url(text)
    assert redacted is not None
    if "@" not in text and "=" not in text:
        assert redacted == text  # nothing looks like a credential: nothing changes
    Redactor.for_url(text).scrub(text)


@given(st.sampled_from("upa"), st.sampled_from("qxz"))
def test_short_credentials_do_not_mask_words(user: str, password: str) -> None:
    redactor = Redactor.for_url(f"redis://{user}:{password}@host:6379")
    text = "Connection refused; Error 111 connecting to host:6379 (queue full)"
    assert redactor.scrub(text) == text  # "ref***sed" was the old result
    assert redactor.scrub(f"wrong password {password}.") == "wrong password ***."
    assert redactor.scrub(f"user {user} denied") == f"user {user} denied"
