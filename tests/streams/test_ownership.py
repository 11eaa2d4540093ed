"""Owned partitions and since when; when each current epoch was first seen."""

from __future__ import annotations

from agent_failover.streams.firstseen import FirstSeen
from agent_failover.streams.ownership import Ownership
from tests.streams.factories import live, record
from tests.streams.harness import agent_in


def test_new_partitions_are_owned_from_now_and_lost_ones_are_forgotten() -> None:
    own = Ownership(4, grace_period=0.0)
    own.set({0, 1}, 10.0)
    own.set({1, 2}, 11.0)
    assert own.since == {1: 10.0, 2: 11.0}
    own.rearm(11.5, {2, 3})  # one not read to its end yet (3 is not owned: ignored)
    assert own.since == {1: 10.0, 2: 11.5}
    own.rearm(12.0)  # a stall: everything
    assert own.since == {1: 12.0, 2: 12.0}


def test_an_agent_is_owned_with_its_partition() -> None:
    own = Ownership(4, grace_period=3.0)
    a1, a3 = agent_in(1, 4), agent_in(3, 4)
    assert own.partition_of(a1) == 1
    own.set({1}, 10.0)
    assert own.owns(a1) and not own.owns(a3) and not own.owns_all
    assert own.owned_since(a1) == 10.0 and own.owned_since(a3) is None
    own.set({0, 1, 2, 3}, 11.0)
    assert own.owns_all and own.owns(a3) and own.owned_since(a3) == 11.0


def test_first_seen_keeps_the_first_time_of_current_epochs_only() -> None:
    seen = FirstSeen()
    seen.note("a", record("a", epoch=1), None, 5.0)
    seen.note("a", record("a", epoch=1), live("a", epoch=2), 6.0)
    assert seen.get("a") == {1: 5.0, 2: 6.0}
    seen.note("a", record("a", epoch=2), live("a", epoch=2), 7.0)  # epoch 1 is gone
    assert seen.get("a") == {2: 6.0}
    seen.note("b", None, live("b", epoch=4), 8.0)
    seen.keep_only({"b"})
    assert seen.get("a") is None and seen.get("b") == {4: 8.0}
    seen.forget("b")
    assert seen.get("b") is None
