"""`VerdictCache`: what it holds, and when it refuses to answer."""

from __future__ import annotations

import math

import pytest

from guard_core._shared.storage.verdict_cache import VerdictCache

MARKS = (0, 0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def trusted_cache(max_entries: int = 10) -> tuple[VerdictCache, Clock]:
    clock = Clock()
    cache = VerdictCache(max_entries, clock=clock)
    cache.trust(MARKS)
    return cache, clock


def test_nothing_is_answered_before_trust() -> None:
    cache = VerdictCache()
    assert cache.put("192.0.2.1", True, math.inf, cache.ticket(), MARKS) is False
    assert cache.get("192.0.2.1", MARKS) is None


def test_a_verdict_is_held_until_it_ends() -> None:
    cache, clock = trusted_cache()
    assert cache.put("192.0.2.1", True, 1010.0, cache.ticket(), MARKS)
    assert cache.put("192.0.2.2", False, math.inf, cache.ticket(), MARKS)
    assert cache.get("192.0.2.1", MARKS) is True
    assert cache.get("192.0.2.2", MARKS) is False
    clock.now = 1010.0
    assert cache.get("192.0.2.1", MARKS) is None  # the ban ended
    assert cache.get("192.0.2.2", MARKS) is False


def test_a_read_that_raced_an_invalidation_is_not_kept() -> None:
    cache, _ = trusted_cache()
    ticket = cache.ticket()
    cache.invalidate()
    assert cache.put("192.0.2.1", False, math.inf, ticket, MARKS) is False
    assert cache.get("192.0.2.1", MARKS) is None


def test_invalidate_and_distrust_drop_everything() -> None:
    cache, _ = trusted_cache()
    cache.put("192.0.2.1", False, math.inf, cache.ticket(), MARKS)
    cache.invalidate()
    assert cache.get("192.0.2.1", MARKS) is None
    cache.put("192.0.2.1", False, math.inf, cache.ticket(), MARKS)
    cache.distrust()
    assert not cache.trusted
    assert len(cache) == 0
    assert cache.put("192.0.2.1", False, math.inf, cache.ticket(), MARKS) is False


def test_new_marks_drop_everything_held_before() -> None:
    cache, _ = trusted_cache()
    cache.put("192.0.2.1", False, math.inf, cache.ticket(), MARKS)
    assert cache.get("192.0.2.1", (1, 0)) is None  # Redis recovered meanwhile
    assert cache.get("192.0.2.1", (1, 0)) is None
    assert cache.put("192.0.2.1", False, math.inf, cache.ticket(), MARKS) is False
    assert cache.get("192.0.2.1", None) is None  # the breaker is open


def test_the_oldest_verdict_goes_first() -> None:
    cache, _ = trusted_cache(max_entries=2)
    for address in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        cache.put(address, False, math.inf, cache.ticket(), MARKS)
    assert len(cache) == 2
    assert cache.get("192.0.2.1", MARKS) is None
    assert cache.get("192.0.2.3", MARKS) is False


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        VerdictCache(0)
    cache, _ = trusted_cache()
    with pytest.raises(ValueError, match="NaN"):
        cache.put("192.0.2.1", False, math.nan, cache.ticket(), MARKS)
