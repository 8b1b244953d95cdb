"""`AddressMirror`: the bounded copy of every address ban, answering during an outage."""

from __future__ import annotations

import logging
import time

import pytest

from guard_core._shared.storage.address_mirror import AddressMirror


def test_a_ban_holds_until_it_ends() -> None:
    mirror = AddressMirror(10)
    now = time.time()
    mirror.put("192.0.2.1", now + 60)
    mirror.put("192.0.2.2", now - 1)
    assert mirror.banned_until("192.0.2.1") == now + 60
    assert mirror.banned_until("192.0.2.2") is None
    assert mirror.banned_until("192.0.2.1", now=now + 61) is None
    mirror.drop("192.0.2.1")
    assert mirror.banned_until("192.0.2.1") is None


def test_a_full_copy_replaces_what_was_held_and_leaves_ended_bans_out() -> None:
    mirror = AddressMirror(10)
    now = time.time()
    mirror.put("192.0.2.1", now + 60)
    assert not mirror.loaded and mirror.synced_at == 0.0
    mirror.replace([("192.0.2.2", now + 60), ("192.0.2.3", now - 5)], version="0:4")
    assert mirror.loaded and mirror.version == "0:4" and mirror.synced_at >= now
    assert len(mirror) == 1
    assert mirror.banned_until("192.0.2.1") is None
    assert mirror.banned_until("192.0.2.2") is not None


def test_past_its_bound_the_bans_that_end_soonest_go_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="guard_core")
    mirror = AddressMirror(100)
    now = time.time()
    for index in range(150):
        mirror.put(f"10.0.0.{index}", now + 1000 + index)
    assert len(mirror) <= 100
    assert mirror.evictions == 150 - len(mirror)
    assert mirror.banned_until("10.0.0.149") is not None  # ends last: kept
    assert mirror.banned_until("10.0.0.0") is None  # ends first: dropped
    full = [r for r in caplog.records if "Ban mirror full" in r.getMessage()]
    assert len(full) == 1


def test_a_bound_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="max_entries must be at least 1"):
        AddressMirror(0)
