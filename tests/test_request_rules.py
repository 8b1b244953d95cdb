"""Pure parts of the request check: client address, decoding, limit strings, headers, presets."""

from __future__ import annotations

import re
from ipaddress import ip_address

import pytest

from guard_core._shared.policy.client_address import (
    ClientAddressResolver,
    forwarded_for,
    group_address,
    lower_headers,
    parse_node,
    x_forwarded_for,
)
from guard_core._shared.policy.header_presets import FASTAPI_DOCS_CSP, fastapi_docs_overrides
from guard_core._shared.policy.rate_limit_rules import (
    guard_rule,
    key_of,
    limit_state,
    make_rule,
    parse_limits,
    ratelimit_headers,
    retry_after,
    rule_of,
)
from guard_core._shared.policy.request_decoding import decoded_variants, scan_texts
from guard_core._shared.policy.request_model import RequestInfo
from guard_core._shared.policy.security_headers import HeadersConfig, build_headers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5/minute", [(5, 60)]),
        ("100/hour;1000/day", [(100, 3600), (1000, 86400)]),
        ("10 per 30 seconds", [(10, 30)]),
        ("3/s, 20/5m", [(3, 1), (20, 300)]),
        ("7/Minutes", [(7, 60)]),
        ("1000/month", [(1000, 30 * 86400)]),
        ("5 per 2 months; 20/year", [(5, 60 * 86400), (20, 365 * 86400)]),
    ],
)
def test_limit_strings(text: str, expected: list[tuple[int, int]]) -> None:
    assert [(limit.count, limit.window) for limit in parse_limits(text)] == expected


@pytest.mark.parametrize("text", ["", "5", "five/minute", "0/minute", "5/0 minutes", "5/week",
                                  "1/minute;2/60s"])  # fmt: skip
def test_bad_limit_strings(text: str) -> None:
    with pytest.raises(ValueError):
        parse_limits(text)


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    assert retry_after(0.2) == 1
    assert retry_after(1.0) == 1
    assert retry_after(1.0001) == 2
    assert retry_after(59.5) == 60
    assert retry_after(0) == 1
    assert retry_after(float("nan")) == 1


def test_ratelimit_headers_report_the_tightest_limit() -> None:
    minute, hour = parse_limits("5/minute;100/hour")
    states = (
        limit_state(minute, remaining=0, reset_after=12.3, allowed=False),
        limit_state(hour, remaining=90, reset_after=1000.0, allowed=True),
    )
    headers = ratelimit_headers(states)
    assert headers["RateLimit-Policy"] == '"5-per-60s";q=5;w=60, "100-per-3600s";q=100;w=3600'
    assert headers["RateLimit"] == '"5-per-60s";r=0;t=13'
    assert (headers["X-RateLimit-Limit"], headers["X-RateLimit-Reset"]) == ("5", "13")
    assert set(ratelimit_headers(states, ietf=False)) == {
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
    }
    assert ratelimit_headers(()) == {}


def test_resolver_without_trusted_proxies_ignores_forwarding_headers() -> None:
    resolver = ClientAddressResolver()
    headers = {"x-forwarded-for": "1.2.3.4"}
    assert str(resolver.resolve("192.0.2.1", headers)) == "192.0.2.1"
    assert resolver.resolve("testclient", headers) is None
    assert resolver.resolve(None, headers) is None
    assert str(resolver.resolve("::ffff:192.0.2.1", {})) == "192.0.2.1"


def test_resolver_steps_over_trusted_proxies_only() -> None:
    resolver = ClientAddressResolver(["10.0.0.0/8"], hops=2)
    # a client cannot forge what the trusted proxies appended after it
    headers = {"x-forwarded-for": "6.6.6.6, 198.51.100.1, 10.0.0.5"}
    assert str(resolver.resolve("10.0.0.1", headers)) == "198.51.100.1"
    one_hop = ClientAddressResolver(["10.0.0.0/8"], hops=1)
    assert str(one_hop.resolve("10.0.0.1", headers)) == "10.0.0.5"
    assert str(resolver.resolve("10.0.0.1", {})) == "10.0.0.1"  # no header: the proxy
    assert resolver.resolve("10.0.0.1", {"x-forwarded-for": "unknown"}) is None


def test_forwarded_header() -> None:
    header = 'for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8:cafe::17]:4711"'
    assert [str(a) for a in forwarded_for(header) if a] == ["192.0.2.60", "2001:db8:cafe::17"]
    resolver = ClientAddressResolver(["203.0.113.0/24"], header="forwarded")
    assert str(resolver.resolve("203.0.113.43", {"forwarded": header})) == "2001:db8:cafe::17"
    assert forwarded_for("for=_hidden, for=unknown") == [None, None]
    assert parse_node("192.0.2.1:8080") == ip_address("192.0.2.1")
    assert parse_node("[::1") is None


def test_ipv6_grouping() -> None:
    assert group_address(ip_address("2001:db8:1:2:3:4:5:6"), 64) == "2001:db8:1:2::/64"
    assert group_address(ip_address("2001:db8::1"), None) == "2001:db8::1"
    assert group_address(ip_address("192.0.2.1"), 64) == "192.0.2.1"


def test_lower_headers_joins_repeats() -> None:
    pairs = [("X-Forwarded-For", "1.1.1.1"), ("x-forwarded-for", "2.2.2.2")]
    assert lower_headers(pairs) == {"x-forwarded-for": "1.1.1.1, 2.2.2.2"}


def test_decoding_goes_at_most_two_deep() -> None:
    assert decoded_variants("%253Cscript%253E") == (
        "%253Cscript%253E",
        "%3Cscript%3E",
        "<script>",
    )
    assert decoded_variants("%25253C")[-1] == "%3C"  # a third layer stays encoded
    assert decoded_variants("a+b") == ("a+b", "a b")
    assert decoded_variants("a+b", plus_is_space=False) == ("a+b",)
    assert scan_texts("/a", "") == ("/a",)


def test_key_functions() -> None:
    info = RequestInfo(peer="1.2.3.4", method="GET", path="/", headers={"x-key": "k"}, user="7")
    assert key_of("ip", info, "1.2.3.4") == "1.2.3.4"
    assert key_of("user", info, "1.2.3.4") == "user:7"
    assert key_of("header:X-Key", info, "1.2.3.4") == "header:k"
    assert key_of("header:X-Other", info, "1.2.3.4") == "1.2.3.4"
    assert key_of(lambda r: None, info, "1.2.3.4") == "1.2.3.4"
    with pytest.raises(TypeError):
        key_of(lambda r: 5, info, None)  # type: ignore[arg-type,return-value]


def test_guard_rule_decorator_marks_the_view() -> None:
    @guard_rule("2/minute", key="user")
    def view() -> None: ...

    rule = rule_of(view)
    assert rule is not None and rule.key == "user"
    assert rule.limits is not None and rule.limits[0].count == 2
    with pytest.raises(ValueError):
        guard_rule("lots")


def test_fastapi_docs_preset_allows_what_the_docs_page_loads() -> None:
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html

    overrides = fastapi_docs_overrides()
    config = HeadersConfig(path_overrides=overrides)  # type: ignore[arg-type]  # normalised
    assert build_headers(config, "/docs")["Content-Security-Policy"] == FASTAPI_DOCS_CSP
    assert "cdn.jsdelivr.net" not in build_headers(config, "/api")["Content-Security-Policy"]
    directives = dict((part.split()[0], part.split()[1:]) for part in FASTAPI_DOCS_CSP.split("; "))
    pages = [
        bytes(get_swagger_ui_html(openapi_url="/openapi.json", title="docs").body).decode(),
        bytes(get_redoc_html(openapi_url="/openapi.json", title="redoc").body).decode(),
    ]
    for html in pages:
        for tag in re.findall(r"<(?:script|link)[^>]*>", html):
            found = re.search(r'(?:src|href)="(https://[^/"]+)', tag)
            if found is None:
                continue
            if tag.startswith("<script"):
                directive = "script-src"
            elif "icon" in tag:
                directive = "img-src"
            else:
                directive = "style-src"
            assert found.group(1) in directives[directive], (found.group(1), directive)
        if re.search(r"<script>\s*\S", html):
            assert "'unsafe-inline'" in directives["script-src"]


@pytest.mark.parametrize("scope", ["", "two words", "a|b", 'quote"d', "x" * 101])
def test_a_shared_limit_scope_is_a_plain_name(scope: str) -> None:
    with pytest.raises(ValueError, match="scope"):
        make_rule("5/minute", scope=scope)


@pytest.mark.parametrize("cost", [0, 1001, -3])
def test_a_rule_cost_is_checked_when_the_rule_is_made(cost: int) -> None:
    with pytest.raises(ValueError, match="cost"):
        make_rule("5/minute", cost=cost)


def test_rule_options_are_checked_when_the_rule_is_made() -> None:
    with pytest.raises(TypeError, match="exempt_when"):
        make_rule("5/minute", exempt_when="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a limit"):
        make_rule("5/fortnight", scope="search")
    rule = make_rule(lambda info: "2/minute", scope="search")
    assert rule.limits is None and rule.scope == "search"
    assert [limit.count for limit in rule.limits_for(RequestInfo(None, "GET", "/"))] == [2]


def test_one_forwarding_header_is_read_and_a_client_cannot_pick_the_other() -> None:
    both = {"forwarded": "for=6.6.6.6", "x-forwarded-for": "198.51.100.9"}
    default = ClientAddressResolver(["10.0.0.0/8"])
    assert str(default.resolve("10.0.0.1", both)) == "198.51.100.9"  # Forwarded ignored
    assert str(default.resolve("10.0.0.1", {"forwarded": "for=6.6.6.6"})) == "10.0.0.1"
    standard = ClientAddressResolver(["10.0.0.0/8"], header="Forwarded")
    assert str(standard.resolve("10.0.0.1", both)) == "6.6.6.6"
    assert str(standard.resolve("10.0.0.1", {"x-forwarded-for": "6.6.6.6"})) == "10.0.0.1"
    with pytest.raises(ValueError, match="forwarded_header"):
        ClientAddressResolver(header="x-real-ip")


def test_a_chain_past_the_bound_is_refused_and_the_right_end_is_read() -> None:
    resolver = ClientAddressResolver(["10.0.0.0/8"], hops=2)
    padded = ", ".join(["1.1.1.1"] * 999 + ["198.51.100.7"])
    assert resolver.resolve_request("10.0.0.1", {"x-forwarded-for": padded}).refused
    assert resolver.resolve("10.0.0.1", {"x-forwarded-for": padded}) is None
    long_entry = "x" * 9000 + ", 198.51.100.7"
    assert resolver.resolve_request("10.0.0.1", {"x-forwarded-for": long_entry}).refused
    # an untrusted peer's headers are never read, however long
    assert str(resolver.resolve("192.0.2.1", {"x-forwarded-for": padded})) == "192.0.2.1"
    at_bound = ", ".join(["1.1.1.1"] * 62 + ["198.51.100.7", "10.0.0.9"])
    assert str(resolver.resolve("10.0.0.1", {"x-forwarded-for": at_bound})) == "198.51.100.7"
    # the parsers read the right end of a long header (what the proxies appended)
    assert [str(a) for a in x_forwarded_for("9" * 9000 + ",1.2.3.4, 5.6.7.8")] == [
        "1.2.3.4",
        "5.6.7.8",
    ]
