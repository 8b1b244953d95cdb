"""`NetworkIndex` against a brute-force scan, and `MemoryBanStore` on top of it."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from guard_core._shared.addresses import IPAddress, IPNetwork
from guard_core._shared.storage.memory_bans import BanRecord, MemoryBanStore
from guard_core._shared.storage.network_index import NetworkIndex

v4_networks = st.builds(
    lambda value, length: ipaddress.ip_network((value, length), strict=False),
    st.integers(0, 2**32 - 1),
    st.integers(0, 32),
)
v6_networks = st.builds(
    lambda value, length: ipaddress.ip_network((value, length), strict=False),
    st.integers(0, 2**128 - 1),
    st.integers(0, 128),
)
addresses = st.one_of(
    st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address),
    st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address),
)


@settings(max_examples=300)
@given(
    networks=st.lists(st.one_of(v4_networks, v6_networks), max_size=40),
    removed=st.lists(st.integers(0, 39), max_size=10),
    probes=st.lists(addresses, max_size=20),
)
def test_lookup_matches_a_linear_scan(
    networks: list[IPNetwork], removed: list[int], probes: list[IPAddress]
) -> None:
    index: NetworkIndex[str] = NetworkIndex()
    for network in networks:
        index.set(network, str(network))
    kept = set(networks)
    for position in removed:
        if position < len(networks):
            index.pop(networks[position])
            kept.discard(networks[position])
    assert len(index) == len(kept)
    # probe addresses inside the networks too, not only random ones
    probes = probes + [n.network_address for n in networks] + [n[-1] for n in networks]
    for address in probes:
        expected = sorted(
            (n for n in kept if n.version == address.version and address in n),
            key=lambda n: -n.prefixlen,
        )
        assert [network for network, _ in index.lookup(address)] == expected


def test_most_specific_first_and_replacing_a_value() -> None:
    index: NetworkIndex[int] = NetworkIndex()
    index.set(ipaddress.ip_network("10.0.0.0/8"), 1)
    index.set(ipaddress.ip_network("10.1.0.0/16"), 2)
    index.set(ipaddress.ip_network("10.1.0.0/16"), 3)
    assert len(index) == 2
    found = [value for _, value in index.lookup(ipaddress.ip_address("10.1.2.3"))]
    assert found == [3, 1]
    assert index.get(ipaddress.ip_network("10.1.0.0/16")) == 3
    assert index.pop(ipaddress.ip_network("10.9.0.0/16")) is None


def test_memory_store_skips_ended_network_bans_and_keeps_its_bound() -> None:
    store = MemoryBanStore(max_entries=2)
    ended = BanRecord(target="10.0.0.0/8", expires_at=50.0)
    live = BanRecord(target="10.1.0.0/16", expires_at=500.0)
    store.add(ended, ipaddress.ip_network(ended.target))
    store.add(live, ipaddress.ip_network(live.target))
    assert store.network_ban(ipaddress.ip_address("10.1.0.1"), now=100.0) == live
    assert store.network_ban(ipaddress.ip_address("10.2.0.1"), now=100.0) is None
    third = BanRecord(target="192.0.2.0/24", expires_at=900.0)
    # the one ending first makes room
    store.add(third, ipaddress.ip_network(third.target), now=100.0)
    assert {r.target for r in store.records(now=0.0)} == {"10.1.0.0/16", "192.0.2.0/24"}
