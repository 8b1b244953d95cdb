"""Hostile requests: whatever the peer, headers, path or query, the check decides and never
raises (a strange request must never become a 500)."""

from __future__ import annotations

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import guard_core
import guard_core.request_check
import guard_core_sync
import guard_core_sync.request_check
from guard_core._shared.policy.check_settings import CheckSettings
from guard_core._shared.policy.client_address import (
    ClientAddressResolver,
    forwarded_for,
    x_forwarded_for,
)
from guard_core._shared.policy.request_decoding import MAX_DECODINGS, decoded_variants
from guard_core._shared.policy.request_model import RequestInfo
from guard_core.models import SecurityConfig

addressish = st.one_of(
    st.text(max_size=60),
    st.ip_addresses().map(str),
    st.ip_addresses().map(lambda a: f"[{a}]:443"),
    st.sampled_from(["testclient", "unknown", "_hidden", "[", "]", "::ffff:1.2.3.4", "fe80::1%lo"]),
)
header_values = st.lists(addressish, max_size=6).map(", ".join)
requests = st.builds(
    RequestInfo,
    peer=st.one_of(st.none(), addressish),
    method=st.sampled_from(["GET", "POST", "HEAD"]),
    path=st.text(max_size=80).map(lambda p: "/" + p),
    query=st.text(max_size=80),
    headers=st.fixed_dictionaries(
        {},
        optional={
            "x-forwarded-for": header_values,
            "forwarded": header_values.map(lambda v: "for=" + v.replace(", ", ", for=")),
            "user-agent": st.text(max_size=40),
        },
    ),
    route=st.one_of(st.none(), st.text(min_size=1, max_size=20)),
    user=st.one_of(st.none(), st.text(min_size=1, max_size=10)),
)
SETTINGS = CheckSettings(
    trusted_proxies=("10.0.0.0/8", "127.0.0.1", "::1"),
    proxy_hops=3,
    scan_headers=("user-agent",),
    default_limits="1000/minute",
    rules={"/x": "1000/hour"},
)
CONFIG = SecurityConfig(enable_redis=False)


@given(peer=st.one_of(st.none(), addressish), forwarded=header_values)
def test_resolver_never_raises(peer: str | None, forwarded: str) -> None:
    resolver = ClientAddressResolver(["0.0.0.0/0", "::/0"], hops=5)
    for headers in ({"x-forwarded-for": forwarded}, {"forwarded": forwarded}, {}):
        resolver.resolve(peer, headers)
    assert len(x_forwarded_for(forwarded)) == forwarded.count(",") + 1
    forwarded_for(forwarded)


@given(st.text(max_size=200))
def test_decoding_is_bounded(text: str) -> None:
    variants = decoded_variants(text)
    assert variants[0] == text and 1 <= len(variants) <= MAX_DECODINGS + 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=requests)
def test_sync_check_always_decides(request: RequestInfo) -> None:
    guard = guard_core_sync.Guard(CONFIG)
    decision = guard_core_sync.request_check.RequestCheck(guard, SETTINGS).check(request)
    assert decision.status in (200, 403, 429)
    assert decision.allowed == (decision.status == 200)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=requests)
def test_async_check_always_decides(request: RequestInfo) -> None:
    guard = guard_core.Guard(CONFIG)
    check = guard_core.request_check.RequestCheck(guard, SETTINGS)
    decision = anyio.run(check.check, request)
    assert decision.status in (200, 403, 429)
