"""The framework-free request check, on fakeredis and on a real redis-server (both faces)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from guard_core._shared.concurrency import async_sleep
from guard_core._shared.policy.check_settings import CheckSettings
from guard_core._shared.policy.rate_limit_rules import make_rule
from guard_core._shared.policy.request_model import RequestInfo
from guard_core.guard import Guard
from guard_core.models import SecurityConfig
from guard_core.request_check import RequestCheck
from tests.support.agents import AsyncRecordingAgent
from tests.support.backends import Backend

DATA = Path(__file__).resolve().parent.parent / "data"

pytestmark = pytest.mark.anyio

CLIENT = "203.0.113.10"


def request(
    path: str = "/",
    *,
    peer: str | None = CLIENT,
    query: str = "",
    route: str | None = None,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> RequestInfo:
    return RequestInfo(
        peer=peer,
        method="GET",
        path=path,
        query=query,
        headers=headers or {},
        route=route if route is not None else path,
        **fields,
    )


async def test_allowed_request_gets_security_and_ratelimit_headers(make_check: Any) -> None:
    check = await make_check(default_limits="5/minute")
    decision = await check.check(request())
    assert decision.allowed and decision.verdict == "allowed" and decision.client == CLIENT
    assert decision.headers["X-Content-Type-Options"] == "nosniff"
    assert decision.headers["RateLimit-Policy"] == '"5-per-60s";q=5;w=60'
    assert decision.headers["RateLimit"].startswith('"5-per-60s";r=4;t=')
    assert decision.headers["X-RateLimit-Remaining"] == "4"


async def test_banned_client_gets_403_with_event_and_log(
    make_check: Any, caplog: pytest.LogCaptureFixture
) -> None:
    check = await make_check()
    agent = AsyncRecordingAgent()
    await check.guard.redis.initialize_agent(agent)
    await check.guard.ip_bans.ban_ip(CLIENT, 60, reason="test")
    with caplog.at_level(logging.INFO, logger="guard_core.decision"):
        decision = await check.check(request())
    assert not decision.allowed
    assert (decision.status, decision.verdict) == (403, "banned")
    assert [(e.event_type, e.action_taken, e.ip_address) for e in agent.events] == [
        ("banned", "request_blocked", CLIENT)
    ]
    records = [r for r in caplog.records if r.name == "guard_core.decision"]
    assert len(records) == 1 and records[0].levelno == logging.INFO
    assert "verdict=banned action=blocked status=403" in records[0].getMessage()
    assert records[0].guard_decision["client"] == CLIENT  # type: ignore[attr-defined]


async def test_rate_limit_gives_429_with_whole_second_retry_after(make_check: Any) -> None:
    check = await make_check(default_limits="", rules={"/login": "2/minute"})
    for _ in range(2):
        assert (await check.check(request("/login"))).allowed
    decision = await check.check(request("/login"))
    assert (decision.status, decision.verdict) == (429, "rate_limited")
    retry = decision.headers["Retry-After"]
    assert retry.isdigit() and 1 <= int(retry) <= 60
    assert decision.headers["RateLimit"].startswith('"2-per-60s";r=0;')
    # another route is not limited by the login rule
    assert (await check.check(request("/other"))).allowed


async def test_several_limits_per_route(make_check: Any) -> None:
    check = await make_check(default_limits="", rules={"/api": "3/minute;2/hour"})
    assert (await check.check(request("/api"))).allowed
    decision = await check.check(request("/api"))
    assert decision.allowed
    assert decision.headers["RateLimit-Policy"] == '"3-per-60s";q=3;w=60, "2-per-3600s";q=2;w=3600'
    assert decision.headers["X-RateLimit-Remaining"] == "0"
    blocked = await check.check(request("/api"))
    assert blocked.status == 429 and blocked.headers["X-RateLimit-Limit"] == "2"


async def test_route_template_is_the_key_not_the_raw_path(make_check: Any) -> None:
    check = await make_check(default_limits="", rules={"/admin/ban/{ip}": "2/minute"})
    for ip in ("1.2.3.4", "5.6.7.8"):
        assert (await check.check(request(f"/admin/ban/{ip}", route="/admin/ban/{ip}"))).allowed
    decision = await check.check(request("/admin/ban/9.9.9.9", route="/admin/ban/{ip}"))
    assert decision.status == 429


@pytest.mark.parametrize(
    "query",
    [
        "q=<script>alert(1)</script>",
        "q=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "q=%253Cscript%253E",
        "id=1%27%20OR%20%271%27%3D%271",
        "id=1'+OR+'1'='1",
    ],
)
async def test_encoded_payloads_are_blocked(make_check: Any, query: str) -> None:
    check = await make_check()
    decision = await check.check(request("/search", query=query))
    assert (decision.status, decision.verdict) == (403, "attack_pattern")


async def test_encoded_path_traversal_is_blocked(make_check: Any) -> None:
    check = await make_check()
    decision = await check.check(request("/files/%2e%2e%2f%2e%2e%2fetc%2fpasswd"))
    assert decision.verdict == "attack_pattern"


async def test_harmless_query_passes(make_check: Any) -> None:
    check = await make_check()
    assert (await check.check(request("/search", query="q=hello+world&page=2"))).allowed


async def test_not_an_ip_peer_is_never_an_error(make_check: Any) -> None:
    check = await make_check(default_limits="1/minute")
    for peer in ("testclient", None, "/run/app.sock", "fe80::1%eth0"):
        decision = await check.check(request(peer=peer))
        assert decision.allowed and decision.client is None
        assert decision.notes and "not an IP address" in decision.notes[0]
    # an attack pattern is still blocked without a client address
    blocked = await check.check(request(peer="testclient", query="q=<script>"))
    assert blocked.verdict == "attack_pattern"


async def test_passive_mode_decides_but_never_blocks(make_check: Any) -> None:
    check = await make_check(passive=True, default_limits="1/minute", auto_ban_threshold=1)
    agent = AsyncRecordingAgent()
    await check.guard.redis.initialize_agent(agent)
    await check.guard.ip_bans.ban_ip("203.0.113.11", 60)
    banned = await check.check(request(peer="203.0.113.11"))
    assert banned.allowed and banned.verdict == "banned" and not banned.enforced
    for _ in range(3):
        decision = await check.check(request(query="q=<script>"))
        assert decision.allowed and not decision.enforced
    assert decision.verdict == "auto_banned"
    assert not await check.guard.ip_bans.is_ip_banned(CLIENT)  # passive never bans
    assert "request_logged" in agent.actions() and "request_blocked" not in agent.actions()


async def test_exempt_paths_and_ips(make_check: Any) -> None:
    check = await make_check(exempt_paths=("/health",), exempt_ips=("198.51.100.0/24",))
    await check.guard.ip_bans.ban_ip(CLIENT, 60)
    assert (await check.check(request("/health/live"))).verdict == "exempt"
    assert (await check.check(request("/healthy"))).verdict == "banned"
    await check.guard.ip_bans.ban_ip("198.51.100.7", 60)
    assert (await check.check(request(peer="198.51.100.7"))).verdict == "exempt"
    exempt_rule = make_rule(exempt=True)
    assert (await check.check(request("/x", rule=exempt_rule))).verdict == "exempt"


async def test_auto_ban_is_shared_between_instances(make_check: Any) -> None:
    first = await make_check(auto_ban_threshold=2, auto_ban_duration=60)
    second = await make_check(auto_ban_threshold=2, auto_ban_duration=60)
    assert (await first.check(request(query="q=<script>"))).verdict == "attack_pattern"
    assert (await second.check(request(query="q=<script>"))).verdict == "attack_pattern"
    assert (await first.check(request(query="q=<script>"))).verdict == "auto_banned"
    # the other instance may hold a verdict from before the ban: the change is pushed to it
    # within milliseconds (100 ms is the target), so allow it up to 2 s here
    verdicts = []
    for _ in range(100):
        verdicts.append((await second.check(request())).verdict)
        if verdicts[-1] == "banned":
            break
        await async_sleep(0.02)
    assert verdicts[-1] == "banned", verdicts


async def test_trusted_proxy_forwarded_client(make_check: Any) -> None:
    check = await make_check(trusted_proxies=("10.0.0.0/8",))
    await check.guard.ip_bans.ban_ip("198.51.100.50", 60)
    forwarded = {"x-forwarded-for": "1.1.1.1, 198.51.100.50"}
    assert (await check.check(request(peer="10.0.0.2", headers=forwarded))).verdict == "banned"
    # the same header from an untrusted peer is ignored
    untrusted = await check.check(request(peer="192.0.2.1", headers=forwarded))
    assert untrusted.allowed and untrusted.client == "192.0.2.1"


async def test_ipv6_clients_share_a_limit_per_64(make_check: Any) -> None:
    check = await make_check(default_limits="2/minute")
    assert (await check.check(request(peer="2001:db8:1:2::1"))).allowed
    assert (await check.check(request(peer="2001:db8:1:2::ffff"))).allowed
    assert (await check.check(request(peer="2001:db8:1:2:3::9"))).status == 429
    assert (await check.check(request(peer="2001:db8:1:3::1"))).allowed


async def test_key_by_header_and_by_user(make_check: Any) -> None:
    check = await make_check(default_limits="1/minute", key="header:X-Api-Key")
    key_a = {"x-api-key": "a"}
    assert (await check.check(request(peer="192.0.2.1", headers=key_a))).allowed
    assert (await check.check(request(peer="192.0.2.2", headers=key_a))).status == 429
    assert (await check.check(request(peer="192.0.2.2", headers={"x-api-key": "b"}))).allowed
    by_user = await make_check(default_limits="1/minute", key="user")
    assert (await by_user.check(request(peer="192.0.2.8", user="42"))).allowed
    assert (await by_user.check(request(peer="192.0.2.9", user="42"))).status == 429


async def test_cloud_block_step_is_skipped_unless_configured(make_check: Any) -> None:
    check = await make_check()
    # no providers configured: no fetch is attempted, the request passes
    assert (await check.check(request(peer="52.95.110.1"))).allowed


async def test_cloud_provider_clients_are_blocked_when_configured(backend: Backend) -> None:
    def aws_ranges(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=(DATA / "aws_ip_ranges.json").read_bytes())

    config = SecurityConfig(
        redis_url=backend.url,
        cloud_providers=("AWS",),
        cloud_ip_urls={"AWS": "https://aws.test/ranges.json"},
    )
    http = httpx.AsyncClient(transport=httpx.MockTransport(aws_ranges))
    guard = Guard(config, client_factory=backend.client_factory, http_client=http)
    await guard.start()
    try:
        check = RequestCheck(guard, CheckSettings(block_cloud_providers=("AWS",)))
        blocked = await check.check(request(peer="198.51.100.9"))
        assert (blocked.status, blocked.verdict) == (403, "cloud_blocked")
        assert (await check.check(request(peer="192.0.2.9"))).allowed
    finally:
        await guard.close()
        await http.aclose()


async def test_guard_starts_again_after_close(backend_redis: Backend) -> None:
    backend = backend_redis
    guard = Guard(SecurityConfig(redis_url=backend.url))
    await guard.start()
    await guard.close()
    await guard.start()
    try:
        assert (await guard.health()).status == "redis"
        assert await guard.ip_bans.ban_ip("203.0.113.77", 60)
        assert backend.inspect.exists("guard_core:banned_ips:203.0.113.77")
    finally:
        await guard.close()


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="not a limit"):
        CheckSettings(default_limits="5/fortnight")
    with pytest.raises(ValueError, match="not a valid IP network"):
        CheckSettings(trusted_proxies=("proxy.local",))
    with pytest.raises(TypeError, match="trusted_proxies"):
        CheckSettings(trusted_proxies="10.0.0.1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown cloud provider"):
        CheckSettings(block_cloud_providers=("Hetzner",))
    with pytest.raises(ValueError, match="exempt path"):
        CheckSettings(exempt_paths=("health",))
    assert dataclasses.replace(CheckSettings(), passive=True).passive


async def test_a_failing_agent_is_warned_of_once_then_once_when_it_accepts_again(
    make_check: Any, caplog: pytest.LogCaptureFixture
) -> None:
    check = await make_check()
    agent = AsyncRecordingAgent(fail=True)
    await check.guard.redis.initialize_agent(agent)
    await check.guard.ip_bans.ban_ip(CLIENT, 60)
    caplog.set_level(logging.WARNING, logger="guard_core.events")
    for _ in range(5):
        assert (await check.check(request())).verdict == "banned"
    agent.fail = False
    for _ in range(3):
        await check.check(request())
    messages = [r.getMessage() for r in caplog.records if r.name == "guard_core.events"]
    assert messages == [
        "Agent handler rejected an event; events are dropped until it recovers: "
        "RuntimeError: agent is down",
        "Agent handler accepts events again",
    ]
    assert len(agent.events) >= 8  # every decision was offered to the agent


def body_request(body: bytes, content_type: str | None, **fields: Any) -> RequestInfo:
    headers = {} if content_type is None else {"content-type": content_type}
    made = request("/submit", headers=headers, body=body, **fields)
    return dataclasses.replace(made, method="POST")


BOUNDARY = "guardboundary"


def multipart(*parts: tuple[str, str | None, str, bytes]) -> bytes:
    """A multipart/form-data body of (name, filename, content type, content) parts."""
    chunks = []
    for name, filename, kind, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\nContent-Type: {kind}\r\n\r\n"
        chunks.append(head.encode() + content + b"\r\n")
    return b"".join(chunks) + f"--{BOUNDARY}--\r\n".encode()


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"comment=%3Cscript%3Ealert(1)%3C%2Fscript%3E", "application/x-www-form-urlencoded"),
        (b"comment=<script>alert(1)</script>", "application/x-www-form-urlencoded"),
        (b'{"user": {"name": "\' OR \'1\'=\'1"}}', "application/json"),
        (b'{"q": "\\u003cscript\\u003ealert(1)"}', "application/vnd.api+json"),
        (b'{"q": "<script>alert(1)</script>"', "application/json"),  # cut: raw text
        (b'{"q": "<script>alert(1)</script>"}', None),  # FastAPI parses it as JSON
        (multipart(("bio", None, "text/plain", b"<script>alert(1)</script>")), None),
    ],
)
async def test_body_payloads_are_blocked(
    make_check: Any, body: bytes, content_type: str | None
) -> None:
    check = await make_check()
    kind = content_type or (f"multipart/form-data; boundary={BOUNDARY}" if b"--" in body else None)
    decision = await check.check(body_request(body, kind))
    assert (decision.verdict, decision.status) == ("attack_pattern", 403)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00<script>alert(1)</script>", "image/png"),  # binary
        (b"\xff\xfe\xfd<script>alert(1)</script>", "application/octet-stream"),  # not UTF-8
        (multipart(("upload", "a.html", "text/html", b"<script>alert(1)</script>")), None),
        (multipart(("blob", "b.bin", "application/octet-stream", b"<script>x</script>")), None),
        (b"comment=hello+world&id=42", "application/x-www-form-urlencoded"),
        (b'{"name": "O\'Brien", "count": 3}', "application/json"),
    ],
)
async def test_bodies_not_text_or_harmless_pass(
    make_check: Any, body: bytes, content_type: str | None
) -> None:
    check = await make_check()
    kind = content_type or f"multipart/form-data; boundary={BOUNDARY}"
    assert (await check.check(body_request(body, kind))).allowed


async def test_body_scanning_is_bounded_and_can_be_turned_off(make_check: Any) -> None:
    payload = b"a=" + b"x" * 100 + b"&b=<script>alert(1)</script>"
    form = "application/x-www-form-urlencoded"
    assert (await (await make_check()).check(body_request(payload, form))).blocked
    bounded = await make_check(body_max_bytes=50)
    assert (await bounded.check(body_request(payload, form))).allowed  # past the bound
    off = await make_check(body_max_bytes=0)
    assert (await off.check(body_request(payload, form))).allowed
    with pytest.raises(ValueError, match="body_max_bytes"):
        CheckSettings(body_max_bytes=-1)


async def test_a_padded_forwarding_chain_cannot_hide_a_banned_client(make_check: Any) -> None:
    check = await make_check(trusted_proxies=["10.0.0.0/8"], proxy_hops=2)
    await check.guard.ip_bans.ban_ip("198.51.100.66", 60)
    behind = {"x-forwarded-for": "198.51.100.66, 10.0.0.7"}
    assert (await check.check(request(peer="10.0.0.1", headers=behind))).verdict == "banned"
    for chain in (
        ", ".join(["192.0.2.1"] * 999 + ["198.51.100.66"]),  # 1,000 entries
        "192.0.2.1 " * 1000 + ", 198.51.100.66",  # 10 KB
    ):
        decision = await check.check(request(peer="10.0.0.1", headers={"x-forwarded-for": chain}))
        assert (decision.status, decision.verdict, decision.reason) == (
            403,
            "denied",
            "forwarding chain too long",
        )
    # a client-sent Forwarded header does not override the proxies' X-Forwarded-For
    forged = {"forwarded": "for=192.0.2.1", "x-forwarded-for": "198.51.100.66"}
    assert (await check.check(request(peer="10.0.0.1", headers=forged))).verdict == "banned"


async def test_a_padded_chain_does_not_make_a_client_exempt_behind_an_exempt_proxy(
    make_check: Any,
) -> None:
    check = await make_check(trusted_proxies=["10.0.0.0/8"], exempt_ips=["10.0.0.0/8"])
    await check.guard.ip_bans.ban_ip("198.51.100.66", 60)
    # the proxy itself (and what it forwards for inside 10/8) stays exempt
    assert (await check.check(request(peer="10.0.0.1"))).verdict == "exempt"
    padded = ", ".join(["192.0.2.1"] * 999 + ["198.51.100.66"])
    decision = await check.check(request(peer="10.0.0.1", headers={"x-forwarded-for": padded}))
    assert (decision.status, decision.verdict) == (403, "denied")
    # under the bound, the banned client is found behind the exempt proxy
    short = ", ".join(["192.0.2.1"] * 30 + ["198.51.100.66"])
    found = await check.check(request(peer="10.0.0.1", headers={"x-forwarded-for": short}))
    assert (found.status, found.verdict) == (403, "banned")
