"""The memory sliding window: bounds, agreement with a plain model of the window, the hot
path's verdict, and the ids of hits."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guard_core._shared.storage.memory_windows import MemorySlidingWindow, next_hit_id
from guard_core.models import RateLimitResult

# Forking a process with threads running is what these tests check (state made before a
# pre-fork server's fork); Python 3.12+ warns on every such fork.
FORKS_WITH_THREADS = pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded, use of fork:DeprecationWarning"
)


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


@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]),  # three keys in a window of two: evictions too
            st.integers(1, 4),  # limit (changing between hits, as callers may)
            st.sampled_from([1.0, 5.0, 20.0]),  # window
            st.sampled_from([0.0, 0.5, 1.0, 3.0, 7.0]),  # time since the previous hit
        ),
        min_size=1,
        max_size=60,
    )
)
def test_verdict_agrees_with_hit(steps: list[tuple[str, int, float, float]]) -> None:
    """The hot path's verdict counts exactly as `hit`, and states the same window."""
    by_verdict, by_hit = MemorySlidingWindow(max_keys=2), MemorySlidingWindow(max_keys=2)
    now = 1000.0
    for key, limit, window, gap in steps:
        now += gap
        with mock.patch("guard_core._shared.storage.memory_windows._monotonic", return_value=now):
            verdict = by_verdict.verdict(key, limit, window)
        expected = by_hit.hit(key, limit, window, now=now)
        assert isinstance(verdict, RateLimitResult)
        assert verdict.allowed is expected.allowed
        assert verdict.count == expected.count
        assert verdict.limit == limit
        assert verdict.remaining == max(0, limit - expected.count)
        assert verdict.reset_after == max(0.0, expected.reset_after)
        assert 0 < verdict.reset_after <= window
    assert len(by_verdict) == len(by_hit)
    assert by_verdict.evictions == by_hit.evictions


def test_results_are_read_only() -> None:
    window = MemorySlidingWindow(max_keys=2)
    verdict = window.verdict("k", 3, 60)
    hit = window.hit("k", 3, 60)
    with pytest.raises(AttributeError):
        verdict.allowed = False  # type: ignore[misc]
    with pytest.raises(AttributeError):
        hit.count = 0  # type: ignore[misc]
    assert (verdict.count, verdict.remaining, hit.count) == (1, 2, 2)
    assert "RateLimitResult(allowed=True, count=1, limit=3, remaining=2" in repr(verdict)


def test_hit_ids_are_unique_across_threads() -> None:
    found: list[list[str]] = [[] for _ in range(4)]

    def draw(index: int) -> None:
        found[index].extend(next_hit_id() for _ in range(5000))

    threads = [threading.Thread(target=draw, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({hit_id for ids in found for hit_id in ids}) == 4 * 5000


def test_hit_ids_are_unique_across_processes() -> None:
    """Two instances (two processes) never name two hits alike: each draws its own prefix."""
    draw = (
        "from guard_core._shared.storage.memory_windows import next_hit_id; "
        "print(*(next_hit_id() for _ in range(1000)))"
    )
    runs = [
        subprocess.run([sys.executable, "-c", draw], capture_output=True, text=True, check=True)
        for _ in range(2)
    ]
    first, second = (set(run.stdout.split()) for run in runs)
    assert len(first) == len(second) == 1000
    assert not first & second
    assert not (first | second) & {next_hit_id() for _ in range(1000)}


@FORKS_WITH_THREADS
def test_a_forked_child_draws_a_prefix_of_its_own() -> None:
    """A child forked after ids were drawn does not repeat its parent's next ones."""
    next_hit_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report one id, then leave at once
        os.write(write, next_hit_id().encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read()
    os.waitpid(pid, 0)
    parent = next_hit_id()
    assert child and parent
    assert child.rsplit("-", 1)[0] != parent.rsplit("-", 1)[0]
    assert child != parent
