"""Prometheus metrics of the request check, and observers in general."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry

import guard_core_sync.request_check
from guard_core._shared.policy.check_settings import CheckSettings
from guard_core._shared.policy.request_model import Decision, RequestInfo
from guard_core.metrics import PrometheusMetrics
from guard_core.models import SecurityConfig

CONFIG = SecurityConfig(enable_redis=False)


def request(query: str = "", peer: str = "203.0.113.60") -> RequestInfo:
    return RequestInfo(peer=peer, method="GET", path="/", query=query, route="/")


def make_check(**fields: object) -> guard_core_sync.request_check.RequestCheck:
    guard = guard_core_sync.Guard(CONFIG)
    return guard_core_sync.request_check.RequestCheck(guard, CheckSettings(**fields))  # type: ignore[arg-type]


def test_decisions_are_counted_by_verdict_and_action() -> None:
    registry = CollectorRegistry()
    check = make_check(observers=(PrometheusMetrics(registry),), default_limits="2/minute")
    for _ in range(3):
        check.check(request())
    check.check(request(query="q=<script>", peer="203.0.113.61"))

    def count(verdict: str, action: str) -> float | None:
        labels = {"verdict": verdict, "action": action}
        return registry.get_sample_value("guard_core_decisions_total", labels)

    assert count("allowed", "allowed") == 2
    assert count("rate_limited", "blocked") == 1
    assert count("attack_pattern", "blocked") == 1
    observed = registry.get_sample_value("guard_core_check_seconds_count", {"outcome": "blocked"})
    assert observed == 2


def test_passive_findings_are_counted_as_logged() -> None:
    registry = CollectorRegistry()
    check = make_check(observers=(PrometheusMetrics(registry),), passive=True)
    check.check(request(query="q=<script>"))
    labels = {"verdict": "attack_pattern", "action": "logged"}
    assert registry.get_sample_value("guard_core_decisions_total", labels) == 1


def test_a_failing_observer_is_logged_once_and_never_fatal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[Decision] = []

    def broken(decision: Decision, seconds: float) -> None:
        raise RuntimeError("collector down")

    check = make_check(observers=(broken, lambda d, s: seen.append(d)))
    with caplog.at_level(logging.WARNING, logger="guard_core.checks"):
        for _ in range(3):
            assert check.check(request()).allowed
    assert len(seen) == 3
    assert len([r for r in caplog.records if "observer failed" in r.getMessage()]) == 1


def test_observers_must_be_callables() -> None:
    with pytest.raises(TypeError, match="callable"):
        CheckSettings(observers=("not callable",))  # type: ignore[arg-type]
