"""Bounded memory fallbacks evict what matters least, count it, and say so once."""

from __future__ import annotations

import ipaddress
import logging
import random

import pytest

from guard_core._shared.storage.journal import Change, Journal
from guard_core._shared.storage.memory_bans import BanRecord, MemoryBanStore
from guard_core._shared.storage.memory_windows import MemorySlidingWindow

NOW = 1_000_000.0


def address(i: int) -> str:
    return str(ipaddress.ip_address("10.0.0.0") + i)


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_full_ban_store_evicts_the_bans_that_expire_first(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="guard_core.ip_ban")
    store = MemoryBanStore(max_entries=100)
    ends = [NOW + 60 + i for i in range(130)]
    random.Random(7).shuffle(ends)  # arrival order says nothing about expiry
    for i, end in enumerate(ends):
        store.add(BanRecord(target=address(i), expires_at=end), now=NOW)
    kept = {r.target for r in store.records(now=NOW)}
    expected = {address(i) for i, end in enumerate(ends) if end >= NOW + 60 + 30}
    assert kept == expected
    assert store.evictions == 30
    assert store.full
    assert warnings(caplog) == [
        "Memory ban store full (100 address bans): evicting the bans that expire first; "
        "see ip_ban_max_entries"
    ]


def test_long_bans_outlive_a_flood_of_short_ones(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="guard_core.ip_ban")
    store = MemoryBanStore(max_entries=50)
    for i in range(20):
        store.add(BanRecord(target=address(i), expires_at=NOW + 86_400), now=NOW)
    for i in range(20, 2_000):  # the flood: many short bans
        store.add(BanRecord(target=address(i), expires_at=NOW + 60 + i / 1000), now=NOW)
    assert all(store.address_ban(address(i), now=NOW + 1) is not None for i in range(20))
    assert len(store.records(now=NOW)) == 50
    assert store.evictions == 2_000 - 50
    assert len(warnings(caplog)) == 1  # one per state change, not one per ban


def test_ended_bans_make_room_without_counting() -> None:
    store = MemoryBanStore(max_entries=10)
    for i in range(10):
        store.add(BanRecord(target=address(i), expires_at=NOW + i), now=NOW)
    for i in range(10, 15):  # bans 0..4 have ended by now
        store.add(BanRecord(target=address(i), expires_at=NOW + 600), now=NOW + 4.5)
    assert store.evictions == 0
    assert not store.full
    assert {r.target for r in store.records(now=NOW + 4.5)} == {address(i) for i in range(5, 15)}


def test_network_bans_are_bounded_the_same_way(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="guard_core.ip_ban")
    store = MemoryBanStore(max_entries=20)
    for i in range(30):
        network = ipaddress.ip_network(f"10.{i}.0.0/16")
        end = NOW + (10_000 if i < 5 else 100 + i)
        store.add(BanRecord(target=str(network), expires_at=end), network, now=NOW)
    for i in range(5):
        assert store.network_ban(ipaddress.ip_address(f"10.{i}.1.1"), now=NOW) is not None
    for i in range(5, 15):  # the ten that ended first are gone
        assert store.network_ban(ipaddress.ip_address(f"10.{i}.1.1"), now=NOW) is None
    assert store.evictions == 10
    assert warnings(caplog) == [
        "Memory ban store full (20 network bans): evicting the bans that expire first; "
        "see ip_ban_max_entries"
    ]


def test_ban_store_warns_once_per_state_change(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="guard_core.ip_ban")
    store = MemoryBanStore(max_entries=10)
    for i in range(15):
        store.add(BanRecord(target=address(i), expires_at=NOW + 100 + i), now=NOW)
    store.remove(address(5))
    assert store.full  # 9 of 10: not below 90 % of the bound yet
    store.remove(address(6))
    assert not store.full  # 8 of 10: room again
    for i in range(100, 110):
        store.add(BanRecord(target=address(i), expires_at=NOW + 1_000), now=NOW)
    assert warnings(caplog) == [
        "Memory ban store full (10 address bans): evicting the bans that expire first; "
        "see ip_ban_max_entries",
        "Memory ban store has room again (8 of 10 address bans)",
        "Memory ban store full (10 address bans): evicting the bans that expire first; "
        "see ip_ban_max_entries",
    ]


def test_rebanning_a_target_needs_no_room() -> None:
    store = MemoryBanStore(max_entries=3)
    for i in range(3):
        store.add(BanRecord(target=address(i), expires_at=NOW + 10 + i), now=NOW)
    store.add(BanRecord(target=address(0), expires_at=NOW + 500), now=NOW)  # extended
    assert store.evictions == 0
    store.add(BanRecord(target=address(9), expires_at=NOW + 600), now=NOW)
    # the extended ban now ends last but one: address 1 (ends first) made room
    assert {r.target for r in store.records(now=NOW)} == {address(i) for i in (0, 2, 9)}
    assert store.evictions == 1


def test_memory_window_drops_emptied_windows_before_live_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="guard_core.rate_limit")
    window = MemorySlidingWindow(max_keys=10)
    for i in range(10):
        window.hit(f"old{i}", 5, 10, now=0)
    for i in range(10):  # the old windows have emptied: they make room silently
        window.hit(f"new{i}", 5, 60, now=100)
    assert window.evictions == 0
    assert caplog.records == []
    for i in range(25):  # live windows now: the least recently used lose their counts
        window.hit(f"flood{i}", 5, 60, now=101)
    assert window.evictions == 25
    assert len(window) == 10
    assert window.hit("flood24", 5, 60, now=102).count == 2  # the recent ones kept theirs
    assert warnings(caplog) == [
        "Memory window store full (10 keys): dropping the least recently used counts; "
        "raise the bound or bring Redis back"
    ]
    for i in range(15, 25):
        window.reset(f"flood{i}")
    assert warnings(caplog)[1:] == ["Memory window store has room again (8 of 10 keys)"]


def change(target: str, keep_until: float) -> Change:
    return Change(topic="ban", target=target, action="ban", at=0.0, keep_until=keep_until)


def test_journal_counts_dropped_pending_changes_and_says_when_it_has_room(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="guard_core.journal")
    journal = Journal(max_entries=10)
    for i in range(14):
        journal.record(change(f"t{i}", keep_until=100.0 + i))
    assert journal.evictions == 4
    assert {c.target for c in journal.pending(now=0.0)} == {f"t{i}" for i in range(4, 14)}
    assert journal.pending(now=106.5) != []  # ended changes leave: 7 of 10 remain
    assert warnings(caplog) == [
        "Outage journal full (10 changes): dropping the changes that end first",
        "Outage journal has room again (7 of 10 changes)",
    ]
