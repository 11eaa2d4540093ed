"""The reservation book: a placement counts against its target until the load planned with
shows it: the target's record (local targets) or about one fleet summary later (remote ones)."""

from __future__ import annotations

import dataclasses

from agent_failover.models import PlanEntry
from agent_failover.streams.reservations import ReservationBook
from agent_failover.streams.state import FencedEpoch
from tests.streams.factories import record, slot


def book() -> ReservationBook:
    return ReservationBook(local_hold=10.0, remote_hold=1.5)


def test_placed_entries_count_until_their_hold_ends_remote_ones_soon() -> None:
    b = book()
    plan = [PlanEntry("t-1", 2, "b", 7), PlanEntry("t-2", 2), PlanEntry("t-3", 2, "b", 7)]
    b.reserve_plan(plan, 10.0, local=lambda agent: agent == "b")
    b.reserve(("c", 1), "t-4", 11.0, local=False)
    assert b.counts() == {("b", 7): 2, ("c", 1): 1}  # the unplaced t-2 reserves nothing
    assert len(b) == 3
    b.expire(12.4)
    assert b.counts() == {("b", 7): 2, ("c", 1): 1}
    b.expire(12.5)
    assert b.counts() == {("b", 7): 2}  # remote: about when its owner's summary shows it
    b.expire(20.0)
    assert b.counts() == {}  # local: shown by the record long before, or lost


def test_placing_a_task_again_renews_its_hold_without_counting_it_twice() -> None:
    b = book()
    b.reserve(("b", 7), "t-1", 10.0, local=False)
    b.reserve(("b", 7), "t-1", 11.0, local=False)
    assert b.counts() == {("b", 7): 1}
    b.expire(12.0)
    assert b.counts() == {("b", 7): 1}


def test_the_targets_record_settles_what_it_shows() -> None:
    b = book()
    for task_id in ("held", "done", "pending"):
        b.reserve(("a", 1), task_id, 0.0, local=True)
    b.reserve(("a", 2), "other-epoch", 0.0, local=True)
    rec = dataclasses.replace(
        record("a", slots=(slot("held"), slot("other-epoch", epoch=1))), done=(("done", 1),)
    )
    b.settle(rec)
    # "other-epoch" is held by epoch 1 in the record, not by epoch 2 it was placed on.
    assert b.counts() == {("a", 1): 1, ("a", 2): 1}
    b.settle(dataclasses.replace(rec, fenced=(FencedEpoch(2, "d", 0.0),)))
    assert b.counts() == {("a", 1): 1}  # a fenced epoch's load no longer matters
    b.release(("a", 1), "pending")  # its decision lost to an earlier one
    assert b.counts() == {}
