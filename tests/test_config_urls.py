"""`redis_url` is checked when `SecurityConfig` is built: a bad URL never reaches redis-py,
where it would fail at first use, connect elsewhere, or override a configured bound."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.connection import parse_url

from guard_core.models import SecurityConfig

SECRET = "S3cr3t-pw"

BAD_URLS = [
    ("redis://h:0/0", "port 0"),
    ("redis://h:6379/abc", "database"),
    ("redis://h:6379/-1", "database"),
    ("redis://h:6379/99999", "database"),
    ("redis://h:6379/0/1", "database"),
    ("redis://h/0?socket_timeout=abc", "socket_timeout"),
    ("redis://h/0?socket_timeout=2", "socket_timeout"),
    ("redis://h/0?retry_on_timeout=true", "retry_on_timeout"),
    ("redis://h/0?max_connections=500", "max_connections"),
    ("redis://h/0?db=abc", "database"),
    ("rediss://h/0?ssl_cert_reqs=bogus", "ssl_cert_reqs"),
    ("redis://h/0?ssl_ca_certs=/ca.pem", "rediss"),
    ("unix://", "socket"),
    ("redis://ho st/0", "host"),
    ("redis://h/0#frag", "fragment"),
    (f"redis://app:12345#{SECRET}@host:6379/0", "percent-encode"),
    (f"redis://app:{SECRET}/x@host:6379/0", "percent-encode"),
    (f"redis://app:{SECRET}?x@host:6379/0", "percent-encode"),
]


@pytest.mark.parametrize(("url", "named"), BAD_URLS)
def test_bad_urls_are_refused_at_construction(url: str, named: str) -> None:
    with pytest.raises(ValueError) as caught:
        SecurityConfig(redis_url=url)
    message = str(caught.value)
    assert named in message
    assert SECRET not in message


reserved = st.sampled_from("#/?")
password_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=16)


@given(
    host=st.sampled_from(["127.0.0.1", "localhost", "[::1]"]),
    port=st.integers(1, 65535),
    database=st.integers(0, 15),
    user=st.one_of(st.none(), st.text(st.characters(codec="ascii"), min_size=1, max_size=8)),
    password=password_text,
)
def test_valid_urls_name_exactly_what_they_say(
    host: str, port: int, database: int, user: str | None, password: str
) -> None:
    auth = "" if user is None else f"{quote(user, safe='')}:{quote(password, safe='')}@"
    url = f"redis://{auth}{host}:{port}/{database}"
    config = SecurityConfig(redis_url=url)
    parsed = parse_url(url)  # type: ignore[no-untyped-call]  # what redis-py will connect to
    assert parsed["host"] == host.strip("[]")
    assert parsed["port"] == port
    assert parsed.get("db", 0) == database
    if user is not None:
        assert parsed["username"] == user
        assert parsed.get("password", "") == password
    assert SECRET not in repr(config)


@given(before=password_text, mark=reserved, after=password_text)
def test_an_unencoded_reserved_character_in_the_password_is_refused_unshown(
    before: str, mark: str, after: str
) -> None:
    password = f"{before}{mark}{SECRET}{after}@"
    url = f"redis://app:{password}host:6379/0"
    with pytest.raises(ValueError) as caught:
        SecurityConfig(redis_url=url)
    assert SECRET not in str(caught.value)
