"""The Cluster key layout `{prefix}{namespace}:{{key}}` (shared by both faces)."""

from __future__ import annotations

import fakeredis
import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from guard_core._shared.keys import build_key, build_pattern, key_in_namespace

key_parts = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    min_size=1,
    max_size=30,
)


def test_cluster_layout_wraps_the_key_part_in_a_hash_tag() -> None:
    assert build_key("guard_core:", "banned_ips", "10.0.0.1", cluster=True) == (
        "guard_core:banned_ips:{10.0.0.1}"
    )
    assert build_key("p:", "rate_limit", "rate:a%3Ab:/x", cluster=True) == (
        "p:rate_limit:{rate:a%253Ab:/x}"
    )
    assert build_key("p:", "ns", "a{b}c", cluster=True) == "p:ns:{a%7Bb%7Dc}"
    # the seed's layout is untouched outside Cluster mode
    assert build_key("p:", "ns", "a{b}c") == "p:ns:a{b}c"


@given(key_parts, st.sampled_from(["banned_ips", "rate_limit", "patterns"]))
def test_keys_of_one_identifier_share_a_slot_and_read_back(key: str, namespace: str) -> None:
    full = build_key("guard_core:", namespace, key, cluster=True)
    other = build_key("guard_core:", "behavior_usage", key, cluster=True)
    assert key_slot(full.encode()) == key_slot(other.encode())
    assert key_in_namespace("guard_core:", namespace, full) == key
    assert key_in_namespace("guard_core:", namespace, full, cluster=True) == key


def test_key_in_namespace_reads_both_layouts_and_can_be_told_which() -> None:
    assert key_in_namespace("p:", "ns", "p:ns:10.0.0.1") == "10.0.0.1"
    assert key_in_namespace("p:", "ns", "p:ns:{10.0.0.1}") == "10.0.0.1"
    # a standalone key part that looks like a hash tag: the caller knows the layout
    assert key_in_namespace("p:", "ns", "p:ns:{x}", cluster=False) == "{x}"
    with pytest.raises(ValueError, match="Cluster key"):
        key_in_namespace("p:", "ns", "p:ns:plain", cluster=True)
    with pytest.raises(ValueError, match="not in namespace"):
        key_in_namespace("p:", "ns", "q:ns:{x}")


@pytest.mark.parametrize(
    ("pattern", "matching", "not_matching"),
    [
        ("banned_ips:*", "10.0.0.1", None),
        ("banned_ips:10.*", "10.0.0.1", "11.0.0.1"),
        ("rate_limit:rate:10.0.0.1:*", "rate:10.0.0.1:/api", "rate:10.0.0.10"),
        ("ns:a{b*", "a{bc", "ab"),
    ],
)
def test_cluster_patterns_find_keys_in_the_cluster_layout(
    pattern: str, matching: str, not_matching: str | None
) -> None:
    namespace = pattern.partition(":")[0]
    server = fakeredis.FakeRedis(decode_responses=True)
    wanted = build_key("p:", namespace, matching, cluster=True)
    server.set(wanted, "1")
    if not_matching is not None:
        server.set(build_key("p:", namespace, not_matching, cluster=True), "1")
    server.set(build_key("q:", namespace, matching, cluster=True), "other prefix")
    found = set(server.scan_iter(match=build_pattern("p:", pattern, cluster=True)))
    assert found == {wanted}


def test_broad_patterns_are_used_as_given() -> None:
    assert build_pattern("p:", "*", cluster=True) == "p:*"
    assert build_pattern("p:", "*:x", cluster=True) == "p:*:x"
    assert build_pattern("p:", "ns:*", cluster=True) == "p:ns:*"
