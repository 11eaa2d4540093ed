"""The reservation book: placements count against a target until its heartbeats can show them."""

from __future__ import annotations

from agent_failover.models import PlanEntry
from streams.reservations import ReservationBook


def test_placed_entries_count_until_their_hold_ends() -> None:
    book = ReservationBook(hold=3.0)
    book.reserve(
        [PlanEntry("t-1", 2, "b", 7), PlanEntry("t-2", 2), PlanEntry("t-3", 2, "b", 7)], 10.0
    )
    book.reserve([PlanEntry("t-4", 2, "c", 1)], 11.0)
    assert book.counts() == {("b", 7): 2, ("c", 1): 1}  # the unplaced t-2 reserves nothing
    book.expire(12.9)
    assert book.counts() == {("b", 7): 2, ("c", 1): 1}
    book.expire(13.0)
    assert book.counts() == {("c", 1): 1}
    book.expire(14.0)
    assert book.counts() == {}


def test_placing_a_task_again_renews_its_hold_without_counting_it_twice() -> None:
    book = ReservationBook(hold=3.0)
    book.reserve([PlanEntry("t-1", 2, "b", 7)], 10.0)
    book.reserve([PlanEntry("t-1", 3, "b", 7)], 12.0)
    assert book.counts() == {("b", 7): 1}
    book.expire(14.0)
    assert book.counts() == {("b", 7): 1}
