"""`redis_url` schemes for Sentinel and Cluster: parsing, validation, redaction."""

from __future__ import annotations

import pytest

from guard_core.models import SecurityConfig
from guard_core.redaction import Redactor, redact_url, url_secrets
from guard_core.redis_url import Topology, parse_redis_url, topology_of

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
