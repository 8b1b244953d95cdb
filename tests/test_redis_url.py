"""`redis_url` schemes for Sentinel and Cluster: parsing, validation, redaction."""

from __future__ import annotations

import re
import urllib.parse
from typing import NoReturn

import pytest
from redis.connection import parse_url

from guard_core._shared.connection.redis_url import Topology, parse_redis_url, topology_of
from guard_core._shared.redaction import Redactor, redact_url, url_secrets
from guard_core.models import SecurityConfig

SECRET = "hunter22"


def test_sentinel_url_names_sentinels_service_and_master_credentials() -> None:
    target = parse_redis_url(
        f"redis+sentinel://app:{SECRET}@10.0.0.1:26379,sentinel-b:26380,[::1]/mymaster"
    )
    assert target.topology is Topology.SENTINEL
    assert target.tls is False
    assert target.nodes == (("10.0.0.1", 26379), ("sentinel-b", 26380), ("::1", 26379))
    assert target.service_name == "mymaster"
    assert (target.username, target.password) == ("app", SECRET)
    assert SECRET not in repr(target)


def test_cluster_url_names_seed_nodes_with_default_port() -> None:
    target = parse_redis_url("redis+cluster://:p%40ss@node-a:7000,node-b")
    assert target.topology is Topology.CLUSTER
    assert target.nodes == (("node-a", 7000), ("node-b", 6379))
    assert target.service_name is None
    assert (target.username, target.password) == (None, "p@ss")


def test_tls_variants_carry_ssl_options() -> None:
    target = parse_redis_url("rediss+cluster://h:7000?ssl_ca_certs=/ca.pem&ssl_certfile=/c.pem")
    assert target.tls is True
    assert target.option("ssl_ca_certs") == "/ca.pem"
    sentinel = parse_redis_url(
        "rediss+sentinel://h:26379/svc?sentinel_password=s3&ssl_check_hostname=false"
    )
    assert (sentinel.tls, sentinel.option("sentinel_password")) == (True, "s3")


def test_standalone_urls_keep_their_meaning() -> None:
    for url in ("redis://h:1/2", "rediss://u:pw@h:6380/0", "unix:///tmp/redis.sock"):
        assert parse_redis_url(url).topology is Topology.STANDALONE
    assert topology_of(None) is Topology.STANDALONE
    assert topology_of("redis+cluster://h:1") is Topology.CLUSTER
    assert topology_of("REDISS+SENTINEL://h:1/s") is Topology.SENTINEL


@pytest.mark.parametrize(
    ("url", "named"),
    [
        (f"redis+sentinel://u:{SECRET}@h:26379", "service"),
        (f"redis+sentinel://u:{SECRET}@h:26379/a/b", "service name"),
        (f"redis+cluster://u:{SECRET}@h:7000/3", "database 0"),
        (f"redis+cluster://u:{SECRET}@h:70000", "invalid port"),
        (f"redis+cluster://u:{SECRET}@h:x", "invalid port"),
        (f"redis+cluster://u:{SECRET}@h:1,,h:2", "empty address"),
        (f"redis+cluster://u:{SECRET}@[::1:7000", "not a valid URL"),
        (f"redis+cluster://u:{SECRET}@[::1]x:7000", "IPv6"),
        (f"redis+cluster://u:{SECRET}@h:1?ssl_ca_certs=/ca", "rediss"),
        (f"redis+cluster://u:{SECRET}@h:1?sentinel_password=x", "sentinel_password"),
        (f"rediss+sentinel://u:{SECRET}@h:1/s?password={SECRET}", "'password'"),
        (f"redis+cluster://u:{SECRET}@h:1#frag", "fragment"),
        (f"redis+sentinels://u:{SECRET}@h:1/s", "scheme"),
    ],
)
def test_bad_topology_urls_fail_at_construction_without_the_password(url: str, named: str) -> None:
    with pytest.raises(ValueError, match=named) as raised:
        SecurityConfig(redis_url=url)
    assert SECRET not in str(raised.value)


def test_cluster_prefix_must_not_hold_braces() -> None:
    with pytest.raises(ValueError, match="hash tag"):
        SecurityConfig(redis_url="redis+cluster://h:7000", redis_prefix="app{1}:")
    # braces in a prefix stay allowed elsewhere: they mean nothing there
    assert SecurityConfig(redis_url="redis+sentinel://h:1/s", redis_prefix="a{1}:")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            f"redis+sentinel://app:{SECRET}@h1:26379,h2:26380/mymaster",
            "redis+sentinel://***@h1:26379,h2:26380/mymaster",
        ),
        (f"rediss+cluster://:{SECRET}@h1:7000,h2:7001", "rediss+cluster://***@h1:7000,h2:7001"),
        (
            f"redis+sentinel://h:1/s?sentinel_password={SECRET}",
            "redis+sentinel://h:1/s?sentinel_password=***",
        ),
    ],
)
def test_redaction_covers_topology_urls(url: str, expected: str) -> None:
    assert redact_url(url) == expected
    assert SECRET in url_secrets(url)
    assert SECRET not in Redactor.for_url(url).scrub(f"failed to reach {url}")
    assert SECRET not in repr(SecurityConfig(redis_url=url))


# -- the netloc is split here, not by urlsplit (whose bracket checks vary by patch release)


@pytest.mark.parametrize(
    ("url", "nodes"),
    [
        ("redis+cluster://[::1]:7000", (("::1", 7000),)),
        ("redis+cluster://[::1]", (("::1", 6379),)),
        ("redis+cluster://[::1]:", (("::1", 6379),)),
        (
            f"redis+cluster://u:{SECRET}@[::1]:7000,[fe80::1%eth0]:7001",
            (("::1", 7000), ("fe80::1%eth0", 7001)),
        ),
        (
            f"redis+cluster://:{SECRET}@h:7000,[2001:db8::2]:7001,10.0.0.3",
            (("h", 7000), ("2001:db8::2", 7001), ("10.0.0.3", 6379)),
        ),
        ("redis+sentinel://[::1],[::2]:26380/m", (("::1", 26379), ("::2", 26380))),
    ],
)
def test_multi_host_netlocs_with_bracketed_ipv6_ports_and_credentials(
    url: str, nodes: tuple[tuple[str, int], ...]
) -> None:
    target = parse_redis_url(url)
    assert target.nodes == nodes
    if SECRET in url:
        assert target.password == SECRET
        assert SECRET not in repr(target)


def test_credentials_are_split_at_the_last_at_sign_and_decoded() -> None:
    target = parse_redis_url("rediss+sentinel://us%3Aer:p%5Bw%5D%3A@[::1]:26379,h/svc")
    assert (target.username, target.password) == ("us:er", "p[w]:")
    assert target.nodes == (("::1", 26379), ("h", 26379))


@pytest.mark.parametrize(
    ("url", "named"),
    [
        (f"redis+cluster://u:{SECRET}@h:1,x[::1]:2", "nothing may stand before"),
        (f"redis+cluster://u:{SECRET}@h:1,[::1]x:2", "only ':port' may follow"),
        (f"redis+cluster://u:{SECRET}@h:1,[::1]]:2", "only ':port' may follow"),
        (f"redis+cluster://u:{SECRET}@h:1,[[::1]:2", "only ':port' may follow"),
        (f"redis+cluster://u:{SECRET}@h:1,[::1:2", "no closing ']'"),
        (f"redis+cluster://u:{SECRET}@h:1,::1]:2", "nothing may stand before"),
        (f"redis+cluster://u:{SECRET}@[127.0.0.1]:2", "IPv6 address only"),
        (f"redis+cluster://u:{SECRET}@[node-a]:2", "IPv6 address only"),
        (f"redis+cluster://u:{SECRET}@[]:2", "IPv6 address only"),
        (f"redis+cluster://u:{SECRET}@::1:2", "goes in brackets"),
        (f"redis+cluster://u:{SECRET}@[::1]:65536", "invalid port"),
        (f"redis+cluster://u:{SECRET}@[::1]:x", "invalid port"),
        (f"redis+cluster://u:{SECRET}@h:\u0661", "invalid port"),
        (f"redis+cluster://u:{SECRET}[@h:1", "'[' or ']' unencoded"),
        (f"redis+sentinel://u:pw]{SECRET}@h:1/s", "'[' or ']' unencoded"),
        (f"redis+cluster://u:{SECRET}\uff03@h:1", "NFKC"),
        (f"redis+cluster://u:{SECRET}@h:1,h\t2:1", "control character"),
        (f" redis+cluster://u:{SECRET}@h:1", "whitespace"),
        (f"redis+cluster://u:{SECRET}@h:1 ", "whitespace"),
        (f"redis+cluster://u:{SECRET}@h :1", "malformed host"),
        (f"redis://u:{SECRET}@h:1,h:2/0", "several hosts"),
        (f"rediss://u:{SECRET}@x[::1]:6379/0", "nothing may stand before"),
        (f"redis://u:{SECRET}@[::1]x:6379/0", "only ':port' may follow"),
        (f"redis://u:{SECRET}@[::1:6379/0", "not a valid URL"),
        (f"redis://u:{SECRET}@[127.0.0.1]:6379/0", "IPv6 address only"),
        (f"redis://u:{SECRET}@[::1]:0/0", "port 0"),
        (f"redis://u:{SECRET}@:6379/0", "no host"),
        (f"redis://u:p[{SECRET}@h/0", "'[' or ']' unencoded"),
    ],
)
def test_malformed_netlocs_are_refused_the_same_on_every_python(url: str, named: str) -> None:
    with pytest.raises(ValueError, match=re.escape(named)) as raised:
        SecurityConfig(redis_url=url)
    assert SECRET not in str(raised.value)


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://app:pw@10.0.0.1:26379,sentinel-b:26380,[::1]/mymaster",
        "rediss+cluster://[::1]:7000,[::2]:7001?ssl_ca_certs=/ca.pem",
        "redis://u:pw@[::1]:6379/0",
        "redis://[2001:db8::1]/3",
        "unix:///run/redis.sock",
    ],
)
def test_parsing_never_calls_urlsplit(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """What the interpreter's urlsplit accepts (it varies) cannot change the answer."""

    def refuse(*args: object, **kwargs: object) -> NoReturn:
        raise AssertionError("urlsplit called")

    monkeypatch.setattr(urllib.parse, "urlsplit", refuse)
    monkeypatch.setattr(urllib.parse, "urlparse", refuse)
    assert parse_redis_url(url).topology is topology_of(url)


@pytest.mark.parametrize(
    ("url", "host", "port"),
    [
        ("redis://u:pw@[::1]:6380/0", "::1", 6380),
        ("redis://[2001:db8::1]/3", "2001:db8::1", 6379),
        ("rediss://h.example:6390/0", "h.example", 6390),
    ],
)
def test_accepted_standalone_urls_read_the_same_by_redis_py(url: str, host: str, port: int) -> None:
    parse_redis_url(url)
    parsed = parse_url(url)  # type: ignore[no-untyped-call]  # redis-py, through urlsplit
    assert (parsed["host"], parsed.get("port", 6379)) == (host, port)
