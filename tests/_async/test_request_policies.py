"""What users of the peers expect of the request check: allow and deny lists, a user-agent
blocklist, shared, computed and conditional limits, distinct policy names, and an auto-ban
that counts attacks rather than 429s (both faces, on fakeredis and a real redis-server)."""

from __future__ import annotations

from typing import Any

import pytest

from guard_core._shared.policy.check_settings import CheckSettings
from guard_core._shared.policy.rate_limit_rules import make_rule
from guard_core._shared.policy.request_model import RequestInfo

pytestmark = pytest.mark.anyio

CLIENT = "203.0.113.10"


def request(
    path: str = "/",
    *,
    peer: str | None = CLIENT,
    query: str = "",
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> RequestInfo:
    return RequestInfo(
        peer=peer, method="GET", path=path, query=query, headers=headers or {}, **fields
    )


async def test_deny_list_refuses_its_clients_and_no_one_else(make_check: Any) -> None:
    check = await make_check(deny_ips=("203.0.113.0/24", "2001:db8::1"))
    denied = await check.check(request())
    assert (denied.status, denied.verdict, denied.allowed) == (403, "denied", False)
    assert (await check.check(request(peer="2001:db8::1"))).verdict == "denied"
    assert (await check.check(request(peer="198.51.100.7"))).verdict == "allowed"


async def test_allow_list_serves_only_its_clients(make_check: Any) -> None:
    check = await make_check(allow_ips=("198.51.100.0/24",))
    assert (await check.check(request(peer="198.51.100.7"))).verdict == "allowed"
    outsider = await check.check(request())
    assert (outsider.status, outsider.verdict) == (403, "denied")


async def test_allow_and_deny_lists_are_checked_at_construction() -> None:
    with pytest.raises(ValueError, match="allow_ips"):
        CheckSettings(allow_ips=("10.0.0.300",))
    with pytest.raises(ValueError, match="deny_ips"):
        CheckSettings(deny_ips=("not-an-address",))
    with pytest.raises(TypeError, match="deny_ips"):
        CheckSettings(deny_ips="10.0.0.1")  # type: ignore[arg-type]


async def test_user_agent_blocklist_blocks_matching_agents_only(make_check: Any) -> None:
    check = await make_check(blocked_user_agents=("sqlmap", r"^python-requests/"))
    scanner = await check.check(request(headers={"user-agent": "sqlmap/1.7#stable"}))
    assert (scanner.status, scanner.verdict) == (403, "user_agent_blocked")
    upper = await check.check(request(headers={"user-agent": "Mozilla/5.0 SQLMAP"}))
    assert upper.verdict == "user_agent_blocked"  # case-insensitive
    script = await check.check(request(headers={"user-agent": "python-requests/2.32"}))
    assert script.verdict == "user_agent_blocked"
    browser = await check.check(request(headers={"user-agent": "Mozilla/5.0 (X11)"}))
    assert browser.verdict == "allowed"
    assert (await check.check(request())).verdict == "allowed"  # no user agent at all


async def test_user_agent_patterns_are_checked_at_construction() -> None:
    with pytest.raises(ValueError, match="blocked_user_agents"):
        CheckSettings(blocked_user_agents=("(?<=x)bot",))  # look-behind: not RE2


async def test_shared_limit_counts_every_route_of_its_scope_in_one_window(
    make_check: Any,
) -> None:
    search = make_rule("2/minute", scope="search")
    check = await make_check(
        default_limits="", rules={"/a": search, "/b": search, "/c": "2/minute"}
    )
    assert (await check.check(request("/a", route="/a"))).allowed
    assert (await check.check(request("/b", route="/b"))).allowed
    third = await check.check(request("/a", route="/a"))
    assert (third.status, third.verdict) == (429, "rate_limited")
    assert third.headers["RateLimit-Policy"] == '"2-per-60s";q=2;w=60'
    # a route outside the scope keeps its own window
    assert (await check.check(request("/c", route="/c"))).allowed


async def test_limits_computed_per_request(make_check: Any) -> None:
    def by_user(info: RequestInfo) -> str:
        return "3/minute" if info.user else "1/minute"

    check = await make_check(default_limits="", rules={"/api": make_rule(by_user, key="user")})
    assert (await check.check(request("/api", route="/api"))).allowed
    assert (await check.check(request("/api", route="/api"))).verdict == "rate_limited"
    for _ in range(3):
        assert (await check.check(request("/api", route="/api", user="ada"))).allowed
    assert (await check.check(request("/api", route="/api", user="ada"))).status == 429


async def test_a_limit_function_returning_no_string_is_a_clear_error(make_check: Any) -> None:
    wrong: Any = lambda info: 5  # noqa: E731  # a function that breaks its contract
    check = await make_check(default_limits="", rules={"/api": make_rule(wrong)})
    with pytest.raises(TypeError, match="limit string"):
        await check.check(request("/api", route="/api"))


async def test_exempt_when_skips_the_route_limits_but_not_the_defaults(make_check: Any) -> None:
    internal = make_rule("1/minute", exempt_when=lambda info: "x-internal" in info.headers)
    check = await make_check(default_limits="3/minute", rules={"/job": internal})
    inside = {"x-internal": "1"}
    assert (await check.check(request("/job", route="/job", headers=inside))).allowed
    assert (await check.check(request("/job", route="/job", headers=inside))).allowed
    assert (await check.check(request("/job", route="/job", headers=inside))).allowed
    # the default limit (3/minute) still counted those three
    assert (await check.check(request("/job", route="/job", headers=inside))).status == 429


async def test_policy_names_are_distinct_when_limits_share_a_window(make_check: Any) -> None:
    check = await make_check(default_limits="5/minute", rules={"/login": "5/minute;20/hour"})
    decision = await check.check(request("/login", route="/login"))
    assert decision.headers["RateLimit-Policy"] == (
        '"5-per-60s";q=5;w=60, "5-per-60s-route";q=5;w=60, "20-per-3600s";q=20;w=3600'
    )
    names = [part.split(";")[0] for part in decision.headers["RateLimit-Policy"].split(", ")]
    assert len(set(names)) == len(names)
    assert decision.headers["RateLimit"].split(";")[0] in names


async def test_rejected_retries_do_not_auto_ban_by_default(make_check: Any) -> None:
    check = await make_check(default_limits="", rules={"/login": "1/minute"}, auto_ban_threshold=2)
    verdicts = [(await check.check(request("/login", route="/login"))).verdict for _ in range(6)]
    assert verdicts == ["allowed"] + ["rate_limited"] * 5
    assert not await check.guard.ip_bans.is_ip_banned(CLIENT)
    # attack patterns still count toward the ban
    for _ in range(2):
        assert (await check.check(request(query="q=<script>"))).verdict == "attack_pattern"
    assert (await check.check(request(query="q=<script>"))).verdict == "auto_banned"


async def test_rejected_retries_auto_ban_when_asked(make_check: Any) -> None:
    check = await make_check(
        default_limits="",
        rules={"/login": "1/minute"},
        auto_ban_threshold=2,
        auto_ban_on_rate_limit=True,
    )
    verdicts = [(await check.check(request("/login", route="/login"))).verdict for _ in range(4)]
    assert verdicts == ["allowed", "rate_limited", "rate_limited", "auto_banned"]
    assert await check.guard.ip_bans.is_ip_banned(CLIENT)


async def test_a_route_cost_counts_against_its_limits_only(make_check: Any) -> None:
    export = make_rule("5/minute", cost=2)
    check = await make_check(default_limits="10/minute", rules={"/export": export})
    first = await check.check(request("/export", route="/export"))
    route_state = [s for s in first.rate_limits if s.name.endswith("-route") or s.limit == 5]
    assert first.allowed and route_state[0].remaining == 3
    default_state = [s for s in first.rate_limits if s.limit == 10]
    assert default_state[0].remaining == 9  # the default limit counts the request once
    assert (await check.check(request("/export", route="/export"))).allowed
    third = await check.check(request("/export", route="/export"))
    assert (third.status, third.verdict) == (429, "rate_limited")  # 4 used, 2 more do not fit


async def test_a_cost_computed_per_request(make_check: Any) -> None:
    def by_size(info: RequestInfo) -> int:
        return 4 if "big" in info.query else 1

    check = await make_check(default_limits="", rules={"/q": make_rule("5/minute", cost=by_size)})
    assert (await check.check(request("/q", route="/q", query="big=1"))).allowed
    assert (await check.check(request("/q", route="/q"))).allowed
    assert (await check.check(request("/q", route="/q", query="big=1"))).status == 429
    wrong: Any = lambda info: "2"  # noqa: E731  # a function that breaks its contract
    bad = await make_check(default_limits="", rules={"/q": make_rule("5/minute", cost=wrong)})
    with pytest.raises(TypeError, match="cost"):
        await bad.check(request("/q", route="/q"))
