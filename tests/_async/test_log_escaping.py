"""Text from outside (ban reasons, identifiers, patterns, routes) cannot forge log lines or
event fields: control characters are shown as escapes wherever subsystems write them."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from guard_core._shared.policy.check_settings import CheckSettings
from guard_core._shared.policy.request_model import RequestInfo
from guard_core.guard import Guard
from guard_core.handlers.cloud_handler import CloudManager
from guard_core.handlers.ipban_handler import IPBanManager
from guard_core.handlers.suspatterns_handler import SusPatternsManager
from guard_core.models import SecurityConfig
from guard_core.request_check import RequestCheck
from tests.support.agents import AsyncRecordingAgent
from tests.support.backends import StateEnv

pytestmark = pytest.mark.anyio

FORGED = "xss\r\nCRITICAL forged"
SHOWN = "xss\\r\\nCRITICAL forged"


def one_line(record: logging.LogRecord) -> str:
    """The record as a handler writes it: it must stay one line."""
    text = logging.Formatter("%(levelname)s %(name)s %(message)s").format(record)
    assert "\n" not in text and "\r" not in text
    return text


async def test_ban_reason_is_logged_on_one_line(
    state_env: StateEnv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="guard_core.ip_ban")
    bans = IPBanManager(state_env.config, state_env.redis)
    assert await bans.ban_ip("203.0.113.7", 60, reason=FORGED)
    [record] = [r for r in caplog.records if r.getMessage().startswith("Banned")]
    assert one_line(record).endswith(f"Banned 203.0.113.7 for 60 s: {SHOWN}")
    [stored] = await bans.list_bans()
    assert stored.reason == FORGED  # the data is kept as given; only its display is escaped


async def test_shared_pattern_and_network_ban_from_redis_are_escaped(
    shared_env: StateEnv, caplog: pytest.LogCaptureFixture
) -> None:
    assert shared_env.inspect is not None
    caplog.set_level(logging.WARNING, logger="guard_core")
    shared_env.inspect.set(shared_env.key("patterns", "custom"), json.dumps([f"({FORGED}"]))
    patterns = SusPatternsManager(shared_env.config, shared_env.redis)
    assert await patterns.detect("harmless") == ()
    record = json.dumps({"expires_at": 4_000_000_000, "banned_at": 1, "reason": "r"})
    shared_env.inspect.hset(
        shared_env.key("banned_networks", "index"), f"10.0.0.0/8{FORGED}", record
    )
    bans = IPBanManager(shared_env.config, shared_env.redis)
    assert await bans.is_ip_banned("10.1.2.3") is False
    texts = [one_line(r) for r in caplog.records]
    assert any(f"Ignoring shared custom pattern ({SHOWN}: not a valid regex" in t for t in texts)
    assert any(f"Ignoring malformed network ban 10.0.0.0/8{SHOWN}" in t for t in texts)


async def test_request_route_is_escaped_in_decision_log_and_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with Guard(SecurityConfig(enable_redis=False)) as guard:
        agent = AsyncRecordingAgent()
        await guard.redis.initialize_agent(agent)
        await guard.ip_bans.ban_ip("203.0.113.10", 60, reason=FORGED)
        check = RequestCheck(guard, CheckSettings())
        request = RequestInfo(
            peer="203.0.113.10",
            method="GET\r\nX",
            path=f"/{FORGED}",
            query="",
            headers={},
            route=None,
        )
        with caplog.at_level(logging.INFO, logger="guard_core"):
            decision = await check.check(request)
    assert decision.verdict == "banned"
    [record] = [r for r in caplog.records if r.name == "guard_core.decision"]
    assert f"method=GET\\r\\nX route=/{SHOWN}" in one_line(record)
    [event] = agent.events
    assert event.metadata["route"] == f"/{SHOWN}"
    assert event.metadata["method"] == "GET\\r\\nX"


async def test_cloud_fetch_error_is_escaped(caplog: pytest.LogCaptureFixture) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(FORGED, request=request)

    config = SecurityConfig(
        enable_redis=False,
        cloud_providers=("AWS",),
        cloud_ip_urls={"AWS": "https://aws.test/ranges.json"},
    )
    caplog.set_level(logging.WARNING, logger="guard_core.cloud")
    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        cloud = CloudManager(config, None, http_client=client)
        assert await cloud.refresh(["AWS"], force=True) == {"AWS": "failed"}
    [record] = caplog.records
    assert f"(ConnectError: {SHOWN})" in one_line(record)
