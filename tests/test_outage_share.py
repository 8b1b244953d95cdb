"""The outage share's arithmetic and its warm windows (pure, both faces use them)."""

from __future__ import annotations

import dataclasses

import pytest

from guard_core._shared.storage.outage_windows import Members, OutageWindows, share_of
from guard_core.models import SecurityConfig

WINDOW = 60.0


@pytest.mark.parametrize("count", [1, 2, 3, 6, 7])
@pytest.mark.parametrize("remaining", [0, 1, 2, 3, 5, 29, 100])
def test_the_shares_of_the_live_instances_add_up_to_what_is_left(
    count: int, remaining: int
) -> None:
    for key in ("a", "client-7", "203.0.113.9"):
        shares = [share_of(remaining, Members(count, rank), key) for rank in range(count)]
        assert sum(shares) == remaining
        assert max(shares) - min(shares) <= 1


def test_the_remainder_turns_with_the_key() -> None:
    # a limit smaller than the instances: not always the same instances get a hit
    lucky = {
        rank
        for key in (f"client-{n}" for n in range(50))
        for rank in range(6)
        if share_of(1, Members(6, rank), key)
    }
    assert lucky == set(range(6))


def test_a_seen_key_gets_a_share_of_what_was_left() -> None:
    windows = OutageWindows(max_keys=10)
    windows.seen("k", 40, now=1000.0)
    members = Members(count=3, rank=0)
    verdicts = [windows.hit("k", 100, WINDOW, members, now=1001.0 + i)[0] for i in range(25)]
    assert sum(v.allowed for v in verdicts) == 20  # (100 - 40) / 3
    assert verdicts[19].count == 100 and verdicts[19].allowed  # its share is used up
    assert verdicts[20].count == 100 and not verdicts[20].allowed
    # a rejected hit is not recorded: nothing to write back for it
    assert windows.hit("k", 100, WINDOW, members, now=1030.0)[1] is None


def test_an_unknown_key_gets_limit_over_n_and_hits_carry_ids() -> None:
    windows = OutageWindows(max_keys=10)
    members = Members(count=4, rank=1)
    recorded = [windows.hit("new", 8, WINDOW, members, now=1000.0 + i)[1] for i in range(3)]
    assert recorded[2] is None
    assert recorded[1] is not None and len(recorded[1]) == 2
    assert len({hit.id for hit in recorded[1]}) == 2
    # the id Redis was sent is kept, so a hung Redis that counts it later counts it once
    other = OutageWindows(max_keys=10)
    _, hits = other.hit("new", 8, WINDOW, members, hit_id="abc", now=1000.0)
    assert hits is not None and hits[0].id == "abc"


def test_a_hit_of_cost_n_takes_n_of_the_share_with_an_id_each() -> None:
    windows = OutageWindows(max_keys=10)
    members = Members(count=2, rank=0)  # a share of 5 of the limit of 10
    admitted, hits = windows.hit("k", 10, WINDOW, members, hit_id="h", cost=3, now=1000.0)
    assert admitted.allowed and hits is not None
    assert [hit.id for hit in hits] == ["h", "h/1", "h/2"]
    refused, none = windows.hit("k", 10, WINDOW, members, cost=3, now=1001.0)
    assert not refused.allowed and none is None
    fits, _ = windows.hit("k", 10, WINDOW, members, cost=2, now=1002.0)
    assert fits.allowed


def test_the_count_seen_before_the_outage_leaves_with_the_window() -> None:
    windows = OutageWindows(max_keys=10)
    windows.seen("k", 10, now=1000.0)
    members = Members(count=2, rank=0)
    assert not windows.hit("k", 10, WINDOW, members, now=1001.0)[0].allowed
    # a window later the hits Redis counted have left it: limit / N again
    later = [windows.hit("k", 10, WINDOW, members, now=1061.0 + i)[0] for i in range(6)]
    assert [v.allowed for v in later] == [True] * 5 + [False]


def test_tracking_records_every_hit_and_reports_the_threshold_passed() -> None:
    windows = OutageWindows(max_keys=10)
    members = Members(count=3, rank=0)
    verdicts = [
        windows.hit("t", 6, WINDOW, members, record_always=True, now=1000.0 + i)[0]
        for i in range(4)
    ]
    assert [v.count > 6 for v in verdicts] == [False, False, True, True]


def test_warm_windows_are_bounded() -> None:
    windows = OutageWindows(max_keys=3)
    for n in range(10):
        windows.seen(f"k{n}", 1)
    assert len(windows) == 3


def test_the_policy_is_checked_at_construction() -> None:
    for policy in ("share", "local", "deny"):
        assert SecurityConfig(rate_limit_outage_policy=policy).rate_limit_outage_policy == policy
    with pytest.raises(ValueError, match="rate_limit_outage_policy must be one of"):
        SecurityConfig(rate_limit_outage_policy="shared")
    with pytest.raises(ValueError, match="rate_limit_member_timeout"):
        SecurityConfig(rate_limit_member_timeout=0)
    assert SecurityConfig().rate_limit_outage_policy == "share"
    assert dataclasses.replace(SecurityConfig(), rate_limit_member_timeout=2.5)
