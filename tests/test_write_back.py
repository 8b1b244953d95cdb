"""When subsystems replay local state to Redis."""

from __future__ import annotations

from guard_core._shared.storage.write_back_schedule import Replay, WriteBackSchedule


def test_nothing_to_do_until_something_changes() -> None:
    schedule = WriteBackSchedule(retry_interval=60)
    assert schedule.due(0, 0, pending=False) is None
    assert schedule.due(1, 0, pending=False) is None  # recovered, nothing pending
    assert schedule.due(2, 0, pending=True) is Replay.PENDING
    assert schedule.due(2, 0, pending=True) is None  # retried at most once per interval
    assert schedule.due(2, 1, pending=False) is Replay.EVERYTHING  # restarted
    assert schedule.due(2, 1, pending=False) is None


def test_pending_changes_are_retried_after_the_interval() -> None:
    schedule = WriteBackSchedule(retry_interval=0)
    assert schedule.due(0, 0, pending=True) is Replay.PENDING
    assert schedule.due(0, 0, pending=True) is Replay.PENDING
