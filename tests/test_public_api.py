"""The public API: what `guard_core.__all__` lists, importable from both faces."""

from __future__ import annotations

import importlib
import inspect

import guard_core
import guard_core_sync

#: Names whose objects belong to a face: the sync face has its own (generated) ones.
FACED = {
    "Guard",
    "RequestCheck",
    "RedisManager",
    "RateLimitManager",
    "IPBanManager",
    "AllowListManager",
    "CloudManager",
    "SusPatternsManager",
    "SecurityHeadersManager",
    "BehaviorTracker",
}


def test_both_faces_export_the_same_names_and_every_name_resolves() -> None:
    assert guard_core.__all__ == guard_core_sync.__all__
    assert sorted(guard_core.__all__) == guard_core.__all__
    for name in guard_core.__all__:
        assert getattr(guard_core, name) is not None
        assert getattr(guard_core_sync, name) is not None
    assert set(guard_core.__all__) >= FACED | {
        "SecurityConfig",
        "CheckSettings",
        "RequestInfo",
        "Decision",
        "GuardRedisError",
        "rate_limit",
        "guard_rule",
        "exempt",
    }


def test_faced_names_are_each_faces_own_and_pure_ones_are_shared() -> None:
    for name in guard_core.__all__:
        ours, theirs = getattr(guard_core, name), getattr(guard_core_sync, name)
        if name in FACED:
            assert ours is not theirs, name
            assert ours.__module__.startswith("guard_core.")
            assert theirs.__module__.startswith("guard_core_sync.")
        else:
            assert ours is theirs, name  # one class whichever face raised or returned it


def test_the_sync_face_is_sync() -> None:
    guard_type = guard_core_sync.Guard
    assert not inspect.iscoroutinefunction(guard_type.start)
    assert inspect.iscoroutinefunction(guard_core.Guard.start)
    check = importlib.import_module("guard_core_sync.request_check").RequestCheck
    assert not inspect.iscoroutinefunction(check.check)
