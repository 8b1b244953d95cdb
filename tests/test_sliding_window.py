"""The memory sliding window: bounds, and agreement with a plain model of the window."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from guard_core.sliding_window import MemorySlidingWindow


def test_least_recently_used_keys_are_dropped() -> None:
    window = MemorySlidingWindow(max_keys=2)
    window.hit("a", 5, 60, now=0)
    window.hit("b", 5, 60, now=1)
    window.hit("a", 5, 60, now=2)  # a is now the most recent
    window.hit("c", 5, 60, now=3)  # drops b
    assert len(window) == 2
    assert window.hit("a", 5, 60, now=4).count == 3
    assert window.hit("b", 5, 60, now=5).count == 1


def test_tracking_keeps_at_most_limit_plus_one() -> None:
    window = MemorySlidingWindow(max_keys=10)
    results = [window.hit("k", 3, 60, record_always=True, now=t) for t in range(10)]
    assert [r.count for r in results] == [1, 2, 3, 4, 4, 4, 4, 4, 4, 4]
    assert [r.allowed for r in results][:4] == [True, True, True, False]


@given(
    limit=st.integers(1, 5),
    window=st.integers(1, 20),
    gaps=st.lists(st.integers(0, 10), min_size=1, max_size=40),
)
def test_agrees_with_a_plain_model(limit: int, window: int, gaps: list[int]) -> None:
    store = MemorySlidingWindow(max_keys=4)
    admitted: list[float] = []
    now = 0.0
    for gap in gaps:
        now += gap
        live = [t for t in admitted if t > now - window]
        expected = len(live) < limit
        result = store.hit("k", limit, window, now=now)
        assert result.allowed is expected
        admitted = [*live, now] if expected else live
        assert result.count == len(admitted)
        assert 0 <= result.reset_after <= window
