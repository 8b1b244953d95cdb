"""The outage journal: latest change per thing, pending until Redis takes it."""

from __future__ import annotations

import logging
import math

import pytest

from guard_core._shared.storage.journal import Change, Journal
from guard_core._shared.storage.outcomes import UNAVAILABLE, Written


def change(target: str, action: str = "ban", at: float = 1.0, **fields: object) -> Change:
    return Change(
        topic="ban", target=target, action=action, at=at,
        keep_until=fields.pop("keep_until", math.inf), **fields,  # type: ignore[arg-type]
    )  # fmt: skip


def test_latest_change_of_a_thing_replaces_the_earlier_one() -> None:
    journal = Journal()
    ban, lift = change("a"), change("a", "lift", at=2.0)
    journal.record(ban)
    journal.record(lift)
    assert journal.pending() == [lift]
    journal.settle(ban, Written.TAKEN)  # an answer about the replaced change changes nothing
    assert journal.is_pending("ban", "a")
    journal.settle(lift, Written.TAKEN)
    assert not journal.has_pending
    assert journal.everything() == [lift]  # durable: written again after a restart


def test_superseded_and_one_shot_changes_are_dropped_once_settled() -> None:
    journal = Journal()
    lost, once = change("a"), change("b", durable=False)
    journal.record(lost)
    journal.record(once)
    journal.settle(lost, Written.SUPERSEDED)
    journal.settle(once, Written.TAKEN)
    assert len(journal) == 0
    kept = change("c")
    journal.record(kept)
    journal.settle(kept, Written.KEPT)
    assert journal.pending_by_topic() == {"ban": 1}


def test_reopen_after_a_restart_and_ended_changes_are_forgotten() -> None:
    journal = Journal()
    old, recent = change("a", at=1.0, keep_until=10.0), change("b", at=2.0, keep_until=100.0)
    for item in (old, recent):
        journal.record(item)
        journal.settle(item, Written.TAKEN)
    assert journal.reopen() == 2
    assert journal.pending(now=50.0) == [recent]  # `old` ended: not worth writing
    assert len(journal) == 1


def test_a_full_journal_drops_taken_changes_first_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="guard_core.journal")
    journal = Journal(max_entries=2)
    taken = change("a", keep_until=100.0)
    journal.record(taken)
    journal.settle(taken, Written.TAKEN)
    journal.record(change("b", keep_until=5.0))
    journal.record(change("c", keep_until=50.0))
    assert {c.target for c in journal.everything(now=0.0)} == {"b", "c"}
    assert caplog.records == []
    journal.record(change("d", keep_until=60.0))  # only pending ones left: the soonest goes
    journal.record(change("e", keep_until=70.0))
    assert {c.target for c in journal.everything(now=0.0)} == {"d", "e"}
    assert [r.getMessage() for r in caplog.records] == [
        "Outage journal full (2 changes): dropping the changes that end first"
    ]


def test_unavailable_is_falsy_and_not_none() -> None:
    assert not UNAVAILABLE
    assert UNAVAILABLE is not None
