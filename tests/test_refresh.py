"""RefreshClaim: one re-read per interval."""

from __future__ import annotations

from guard_core._shared.storage.refresh_claim import RefreshClaim


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_claim_per_interval() -> None:
    clock = Clock()
    claim = RefreshClaim(5.0, clock)
    assert claim.claim() is True
    clock.now = 101.0
    assert claim.claim() is False
    clock.now = 104.9
    assert claim.claim() is False
    clock.now = 105.0
    assert claim.claim() is True
    clock.now = 106.0
    assert claim.claim(force=True) is True
    clock.now = 110.0
    assert claim.claim() is False
    claim.expire()
    assert claim.claim() is True
