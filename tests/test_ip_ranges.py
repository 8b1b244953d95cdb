"""Pure parts of the cloud ranges: each provider's format, the lookup table, IP parsing."""

from __future__ import annotations

import json
import random
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guard_core._shared.addresses import (
    IPAddress,
    IPNetwork,
    canonical_ip,
    is_loopback,
    parse_ip,
    parse_network,
)
from guard_core._shared.policy.ip_ranges import (
    DEFAULT_URLS,
    PARSERS,
    IPRangeTable,
    check_provider,
    decode_cached,
    encode_cached,
    find_azure_json_url,
    parse_aws,
    parse_azure,
    parse_gcp,
)

DATA = Path(__file__).resolve().parent / "data"


def read(name: str) -> str:
    return (DATA / name).read_text()


# -- provider formats -----------------------------------------------------------------------


def test_aws_takes_v4_and_v6_prefixes_of_every_service_deduplicated() -> None:
    assert parse_aws(read("aws_ip_ranges.json")) == [
        "198.51.100.0/24",
        "198.51.100.0/25",
        "100.64.8.0/22",
        "100.64.12.0/22",
        "2001:db8:a000::/40",
        "2001:db8:a000:100::/56",
    ]


def test_gcp_takes_ipv4prefix_and_ipv6prefix_entries() -> None:
    assert parse_gcp(read("gcp_cloud.json")) == [
        "203.0.113.0/25",
        "100.72.16.0/20",
        "2001:db8:b000::/44",
    ]


def test_azure_takes_only_the_azurecloud_value() -> None:
    cidrs = parse_azure(read("azure_service_tags.json"))
    assert cidrs == ["203.0.113.128/25", "100.80.0.0/16", "2001:db8:c000::/40"]
    assert "192.0.2.0/28" not in cidrs  # ActionGroup, a service tag, is not used


def test_parsers_accept_bytes_and_canonicalise_cidrs() -> None:
    body = json.dumps(
        {"prefixes": [{"ipv6Prefix": "2001:DB8:0000::/48"}, {"ipv4Prefix": "192.0.2.0/24"}]}
    ).encode()
    assert parse_gcp(body) == ["2001:db8::/48", "192.0.2.0/24"]


def test_parsers_are_registered_under_the_config_names() -> None:
    assert set(PARSERS) == set(DEFAULT_URLS) == {"AWS", "GCP", "Azure"}
    assert PARSERS["AWS"] is parse_aws
    assert check_provider("Azure") == "Azure"
    with pytest.raises(
        ValueError, match=r"unknown cloud provider 'aws' \(known: AWS, GCP, Azure\)"
    ):
        check_provider("aws")
    with pytest.raises(TypeError):
        check_provider(None)


AWS_ENTRY = {"region": "r", "service": "AMAZON", "network_border_group": "r"}


@pytest.mark.parametrize(
    ("parser", "body", "message"),
    [
        (parse_aws, "<html>maintenance</html>", "not JSON"),
        (parse_aws, "", "not JSON"),
        (parse_aws, "[]", "expected an object"),
        (parse_aws, '{"prefixes": []}', "'ipv6_prefixes' is missing"),
        (parse_aws, '{"prefixes": [], "ipv6_prefixes": []}', "no prefixes"),
        (
            parse_aws,
            json.dumps({"prefixes": [{"ip_prefix": "192.0.2.1/24"}], "ipv6_prefixes": []}),
            "host bits",
        ),
        (
            parse_aws,
            json.dumps({"prefixes": [{"ip_prefix": "300.0.0.0/8"}], "ipv6_prefixes": []}),
            "not a valid IP network",
        ),
        (
            parse_aws,
            json.dumps({"prefixes": [AWS_ENTRY], "ipv6_prefixes": []}),
            "'ip_prefix' is missing",
        ),
        (parse_aws, json.dumps({"prefixes": [42], "ipv6_prefixes": []}), "expected an object"),
        (parse_gcp, '{"syncToken": "1"}', "'prefixes' is missing"),
        (parse_gcp, '{"prefixes": [{"service": "Google Cloud"}]}', "neither ipv4Prefix"),
        (parse_gcp, '{"prefixes": [{"ipv4Prefix": 17}]}', "not a string"),
        (parse_gcp, '{"prefixes": ["192.0.2.0/24"]}', "not an object"),
        (parse_azure, '{"values": []}', "no 'AzureCloud'"),
        (parse_azure, '{"values": [{"name": "AzureCloud"}]}', "'properties' is missing"),
        (
            parse_azure,
            '{"values": [{"name": "AzureCloud", "properties": {"addressPrefixes": []}}]}',
            "no prefixes",
        ),
        (parse_azure, b"\xff\xfe{", "not JSON"),
    ],
)
def test_malformed_bodies_raise_value_error(parser: object, body: str, message: str) -> None:
    assert callable(parser)
    with pytest.raises(ValueError, match=message):
        parser(body)


def test_azure_json_link_is_found_on_the_download_page() -> None:
    url = find_azure_json_url(read("azure_download_page.html"))
    assert url == (
        "https://download.microsoft.com/download/7/1/d/71d86715-5596-4529-9b13-da13a5de5b63/"
        "ServiceTags_Public_20240115.json"
    )


def test_azure_newest_link_wins_and_a_page_without_link_is_an_error() -> None:
    base = "https://download.microsoft.com/download/0/a/b/"
    page = (
        f'<a href="{base}ServiceTags_Public_20240108.json">old</a>'
        f" {base}ServiceTags_Public_20240115.json"
    )
    assert find_azure_json_url(page).endswith("ServiceTags_Public_20240115.json")
    with pytest.raises(ValueError, match="no ServiceTags_Public"):
        find_azure_json_url("<html>Page not found</html>")
    with pytest.raises(ValueError):  # another host is not taken
        find_azure_json_url("https://evil.example/download/ServiceTags_Public_20240115.json")


def test_cached_value_round_trip_and_malformed_cache() -> None:
    text = encode_cached(["192.0.2.0/24", "2001:db8::/32"], 1700000000.5)
    assert json.loads(text) == {
        "fetched_at": 1700000000.5,
        "cidrs": ["192.0.2.0/24", "2001:db8::/32"],
    }
    assert decode_cached(text) == (1700000000.5, ["192.0.2.0/24", "2001:db8::/32"])
    for bad in (
        "not json",
        '["192.0.2.0/24"]',
        '{"fetched_at": true, "cidrs": ["192.0.2.0/24"]}',
        '{"fetched_at": 1, "cidrs": ["nope"]}',
        '{"fetched_at": 1, "cidrs": []}',
        '{"fetched_at": 1e999, "cidrs": ["192.0.2.0/24"]}',
    ):
        with pytest.raises(ValueError):
            decode_cached(bad)


# -- the lookup table -----------------------------------------------------------------------


def test_table_merges_overlapping_and_adjacent_ranges() -> None:
    table = IPRangeTable(
        ["192.0.2.0/25", "192.0.2.128/25", "192.0.2.64/26", "198.51.100.0/24", "10.0.0.0/8"]
    )
    v4 = [(str(IPv4Address(a)), str(IPv4Address(b))) for a, b in table.intervals(4)]
    assert v4 == [
        ("10.0.0.0", "10.255.255.255"),
        ("192.0.2.0", "192.0.2.255"),
        ("198.51.100.0", "198.51.100.255"),
    ]
    assert table.intervals(6) == []
    assert len(table) == 3


def test_table_keeps_families_apart() -> None:
    table = IPRangeTable(["0.0.0.0/31", "2001:db8::/32"])
    assert table.contains_int(1, 4) is True  # 0.0.0.1
    assert table.contains_int(1, 6) is False  # ::1
    assert table.contains(parse_ip("2001:db8:ffff::1")) is True
    assert table.contains(parse_ip("2001:db9::1")) is False
    with pytest.raises(ValueError, match="version must be 4 or 6"):
        table.contains_int(1, 5)


def test_table_edges_and_mapped_addresses() -> None:
    table = IPRangeTable([ip_network("198.51.100.0/24"), "::ffff:203.0.113.0/120"])
    assert table.intervals(6) == []  # the mapped network is stored as 203.0.113.0/24
    for inside in ("198.51.100.0", "198.51.100.255", "::ffff:198.51.100.7", "203.0.113.9"):
        assert table.contains(parse_ip(inside)), inside
    for outside in ("198.51.99.255", "198.51.101.0", "0.0.0.0", "255.255.255.255", "::"):
        assert not table.contains(parse_ip(outside)), outside


def test_empty_table_and_invalid_cidr() -> None:
    assert not IPRangeTable().contains(parse_ip("192.0.2.1"))
    assert len(IPRangeTable()) == 0
    with pytest.raises(ValueError, match="host bits"):
        IPRangeTable(["192.0.2.1/24"])


def test_table_matches_brute_force_at_ten_thousand_ranges() -> None:
    rng = random.Random(1234)
    nets: list[IPNetwork] = []
    for _ in range(10_000):
        plen = rng.randint(12, 28)
        nets.append(IPv4Network((rng.getrandbits(32), plen), strict=False))
    table = IPRangeTable(nets)
    probes: list[IPv4Address | IPv6Address] = [IPv4Address(rng.getrandbits(32)) for _ in range(300)]
    probes += [n.network_address for n in nets[:100]] + [n.broadcast_address for n in nets[:100]]
    for address in probes:
        assert table.contains(address) == any(address in n for n in nets), address


def _network(version: int, bits: int, plen: int) -> IPNetwork:
    if version == 4:
        return IPv4Network((bits & (2**32 - 1), plen % 33), strict=False)
    return IPv6Network((bits, plen % 129), strict=False)


networks = st.builds(
    _network,
    st.sampled_from([4, 6]),
    st.integers(min_value=0, max_value=2**128 - 1),
    st.integers(min_value=0, max_value=128),
)


@settings(max_examples=300, deadline=None)
@given(nets=st.lists(networks, max_size=30), data=st.data())
def test_table_agrees_with_scanning_the_networks(
    nets: list[IPNetwork], data: st.DataObject
) -> None:
    table = IPRangeTable(str(n) for n in nets)
    canonical = [parse_network(str(n)) for n in nets]
    near = [
        st.builds(
            lambda n, k: n.network_address + (k % n.num_addresses),
            st.just(n),
            st.integers(0, 2**128),
        )
        for n in nets
    ]
    edges = [
        st.just(n.broadcast_address + 1)
        for n in nets
        if int(n.broadcast_address) < 2**n.max_prefixlen - 1
    ]
    mapped = [  # the same addresses written as IPv4-mapped IPv6
        st.builds(
            lambda n, k: IPv6Address(
                0xFFFF_0000_0000 + int(n.network_address) + k % n.num_addresses
            ),
            st.just(n),
            st.integers(0, 2**32),
        )
        for n in nets
        if n.version == 4
    ]
    anywhere = st.one_of(
        st.builds(IPv4Address, st.integers(0, 2**32 - 1)),
        st.builds(IPv6Address, st.integers(0, 2**128 - 1)),
    )
    raw: IPAddress = data.draw(st.one_of(anywhere, *near, *edges, *mapped))
    address = parse_ip(str(raw))
    expected = any(address.version == n.version and address in n for n in canonical)
    assert table.contains(address) is expected


# -- ip_utils -------------------------------------------------------------------------------


def test_parse_ip_canonicalises_and_maps_ipv4() -> None:
    assert parse_ip("::ffff:192.0.2.1") == IPv4Address("192.0.2.1")
    assert parse_ip("::FFFF:c000:0201") == IPv4Address("192.0.2.1")
    assert parse_ip(IPv6Address("::ffff:192.0.2.1")) == IPv4Address("192.0.2.1")
    assert parse_ip("2001:DB8::1") == IPv6Address("2001:db8::1")
    assert canonical_ip("2001:0db8:0000::0001") == "2001:db8::1"
    assert canonical_ip("::ffff:10.1.2.3") == "10.1.2.3"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("not-an-ip", ValueError),
        ("", ValueError),
        ("256.1.1.1", ValueError),
        ("192.0.2.0/24", ValueError),
        ("fe80::1%eth0", ValueError),
        (3232235777, TypeError),
        (None, TypeError),
    ],
)
def test_parse_ip_rejects(text: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_ip(text)


def test_parse_network_is_strict_and_maps_ipv4() -> None:
    assert parse_network("192.0.2.0/24") == IPv4Network("192.0.2.0/24")
    assert parse_network("192.0.2.7") == IPv4Network("192.0.2.7/32")
    assert parse_network("::ffff:192.0.2.0/120") == IPv4Network("192.0.2.0/24")
    assert parse_network("::ffff:0:0/96") == IPv4Network("0.0.0.0/0")
    assert parse_network("::/0") == IPv6Network("::/0")  # wider than the mapped block: kept
    with pytest.raises(ValueError, match=r"'192\.0\.2\.1/24' has host bits set"):
        parse_network("192.0.2.1/24")
    with pytest.raises(ValueError, match="not a valid IP network"):
        parse_network("192.0.2.0/33")
    with pytest.raises(TypeError):
        parse_network(b"192.0.2.0/24")


def test_is_loopback() -> None:
    for loop in ("127.0.0.1", "127.255.0.9", "::1", "::ffff:127.0.0.5"):
        assert is_loopback(loop), loop
    for other in ("192.0.2.1", "::2", "::ffff:192.0.2.1"):
        assert not is_loopback(other), other
    assert is_loopback(IPv4Network("0.0.0.0/0")) is True
    assert is_loopback(IPv6Network("::/64")) is True
    assert is_loopback(IPv4Network("192.0.2.0/24")) is False
    with pytest.raises(ValueError):
        is_loopback("localhost")
