"""The circuit breaker's transitions, on a fake clock."""

from __future__ import annotations

import threading

from guard_core._shared.connection.circuit_breaker import Admission, BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def state_of(breaker: CircuitBreaker) -> BreakerState:
    """The state, read through a call so that the type checker does not keep a narrowing."""
    return breaker.state


def test_closed_open_probe_closed() -> None:
    clock = Clock()
    breaker = CircuitBreaker(base_delay=1.0, max_delay=8.0, clock=clock)
    assert breaker.admit() is Admission.ALLOW
    assert breaker.failed("refused") is True
    assert breaker.state is BreakerState.OPEN
    assert breaker.admit() is Admission.REJECT
    clock.now += 1.0
    assert breaker.admit() is Admission.PROBE
    assert breaker.admit() is Admission.REJECT  # one probe at a time
    assert breaker.succeeded() is True
    assert state_of(breaker) is BreakerState.CLOSED
    assert breaker.admit() is Admission.ALLOW
    snapshot = breaker.snapshot()
    assert snapshot["times_opened"] == 1
    assert snapshot["failures"] == 1
    assert snapshot["rejections"] == 2
    assert snapshot["last_error"] == "refused"


def test_failed_probes_back_off_up_to_the_cap() -> None:
    clock = Clock()
    breaker = CircuitBreaker(base_delay=1.0, max_delay=4.0, clock=clock)
    breaker.failed("timeout")
    delays = []
    for _ in range(5):
        waited = 0.0
        while breaker.admit() is not Admission.PROBE:
            clock.now += 0.5
            waited += 0.5
        delays.append(waited)
        assert breaker.failed("timeout") is False
    assert delays == [1.0, 2.0, 4.0, 4.0, 4.0]
    clock.now += 4.0
    assert breaker.admit() is Admission.PROBE
    assert breaker.succeeded() is True
    breaker.failed("again")
    clock.now += 1.0  # back to the base delay after a recovery
    assert breaker.admit() is Admission.PROBE


def test_abandoned_probe_lets_the_next_caller_probe() -> None:
    clock = Clock()
    breaker = CircuitBreaker(base_delay=1.0, max_delay=4.0, clock=clock)
    breaker.failed("x")
    clock.now += 1.0
    assert breaker.admit() is Admission.PROBE
    breaker.abandoned(Admission.PROBE)
    assert breaker.admit() is Admission.PROBE


def test_any_answer_closes_and_late_failures_leave_the_schedule() -> None:
    clock = Clock()
    breaker = CircuitBreaker(base_delay=1.0, max_delay=4.0, clock=clock)
    breaker.failed("x")
    for _ in range(200):  # calls that were in flight when Redis went away
        assert breaker.failed("late") is False
    clock.now += 1.0
    assert breaker.admit() is Admission.PROBE  # still one base delay after opening
    assert breaker.succeeded() is True
    assert breaker.succeeded() is False
    assert breaker.snapshot()["failures"] == 201


def test_only_one_thread_probes() -> None:
    clock = Clock()
    breaker = CircuitBreaker(base_delay=1.0, max_delay=4.0, clock=clock)
    breaker.failed("x")
    clock.now += 1.0
    results: list[Admission] = []
    barrier = threading.Barrier(16)

    def call() -> None:
        barrier.wait()
        results.append(breaker.admit())

    threads = [threading.Thread(target=call) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(Admission.PROBE) == 1
    assert results.count(Admission.REJECT) == 15
