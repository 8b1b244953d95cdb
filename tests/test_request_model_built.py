"""`request_model.built` builds the hot path's frozen dataclasses without their `__init__`:
each use must give every field, or an instance would lack one."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from guard_core._shared.policy.check_settings import CheckSettings
from guard_core._shared.policy.rate_limit_rules import limit_state
from guard_core._shared.policy.request_model import Decision, LimitState, RequestInfo, built
from guard_core.adapters._process import environ_request
from guard_core.adapters.asgi import request_info
from guard_core.models import SecurityConfig
from guard_core_sync.guard import Guard
from guard_core_sync.request_check import RequestCheck


def assert_whole(instance: Any) -> None:
    names = {field.name for field in dataclasses.fields(instance)}
    assert set(vars(instance)) == names
    assert instance == type(instance)(**vars(instance))  # as the generated __init__ builds it
    with pytest.raises(dataclasses.FrozenInstanceError):
        instance.__setattr__(next(iter(names)), None)


def test_asgi_and_wsgi_request_infos_are_whole() -> None:
    scope = {"type": "http", "method": "GET", "path": "/a", "query_string": b"q=1",
             "headers": [(b"host", b"x")], "client": ("192.0.2.1", 1)}  # fmt: skip
    assert_whole(request_info(scope, routes=False))
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/b", "REMOTE_ADDR": "192.0.2.2"}
    info = environ_request(environ, route="/b")
    assert_whole(info)
    assert isinstance(info, RequestInfo) and info.peer == "192.0.2.2"


def test_limit_states_and_allowed_decisions_are_whole() -> None:
    settings = CheckSettings(default_limits="5/minute")
    state = limit_state(settings.default_limit_list(5, 60)[0], remaining=4, reset_after=1.5,
                        allowed=True)  # fmt: skip
    assert_whole(state)
    assert isinstance(state, LimitState) and state.reset == 2
    guard = Guard(SecurityConfig(enable_redis=False))
    decision = RequestCheck(guard, settings).check(
        RequestInfo(peer="192.0.2.3", method="GET", path="/c")
    )
    assert decision.verdict == "allowed"
    assert_whole(decision)
    assert isinstance(decision, Decision) and decision.rate_limits[0].remaining == 4


def test_built_is_the_instance_init_gives() -> None:
    made = built(LimitState, policy="1/s", name="1-per-1s", limit=1, window=1, remaining=0,
                 reset=1, allowed=False)  # fmt: skip
    assert made == LimitState("1/s", "1-per-1s", 1, 1, 0, 1, False)
    assert hash(made) == hash(LimitState("1/s", "1-per-1s", 1, 1, 0, 1, False))
