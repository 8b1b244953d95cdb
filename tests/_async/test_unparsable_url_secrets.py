"""A password the URL parser misreads (an unencoded `#`, `/`, `?`) never reaches the log,
`repr(config)`, `health()` or an event. The URL may be refused at construction instead; the
refusal must not print the password either."""

from __future__ import annotations

import logging

import pytest

from guard_core.guard import Guard
from guard_core.models import SecurityConfig
from guard_core.testing import free_port
from tests.support.agents import AsyncRecordingAgent

pytestmark = pytest.mark.anyio

SECRET = "S3cr3tPw"


@pytest.mark.parametrize("cut", ["#", "/", "?"])
async def test_misread_password_stays_hidden(cut: str, caplog: pytest.LogCaptureFixture) -> None:
    # read as 127.0.0.1:first (nothing listening), the password after `cut`; whichever way
    # it is read, only loopback is ever dialled
    first, second = free_port(), free_port()
    url = f"redis://127.0.0.1:{first}{cut}{SECRET}@127.0.0.1:{second}/0"
    caplog.set_level(logging.DEBUG, logger="guard_core")
    try:
        config = SecurityConfig(redis_url=url, redis_connect_timeout=0.2)
    except ValueError as exc:
        assert SECRET not in str(exc)
        return
    assert SECRET not in repr(config)
    guard = Guard(config)
    agent = AsyncRecordingAgent()
    await guard.redis.initialize_agent(agent)
    async with guard:
        health = await guard.health()
        assert health.status == "degraded"
        assert SECRET not in repr(health)
    assert SECRET not in caplog.text
    assert f"Starting in degraded mode: redis://***@127.0.0.1:{second}/0" in caplog.text
    assert agent.events  # the outage was reported, and masked
    assert all(SECRET not in repr(event) for event in agent.events)
