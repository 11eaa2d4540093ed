"""The decision log: typed keys, seen applied in the agent's record, or expired."""

from __future__ import annotations

import dataclasses

from agent_failover.models import PlanEntry
from agent_failover.streams.decisions import DecisionLog, Fence, Move
from agent_failover.streams.dispatch import plan_moves
from agent_failover.streams.state import AgentRecord, FencedEpoch
from tests.streams.factories import record, slot


def test_a_plan_entry_and_the_slot_it_moves_name_the_same_move() -> None:
    held = slot("t-1", attempt=3)
    (entry,) = plan_moves([held], [])  # unplaced: still a decision about attempt 3
    assert entry.attempt == 4
    assert Move.of_entry("a", entry) == Move.of_slot("a", held) == Move("a", "t-1", 3)


def test_a_fence_is_applied_once_the_record_shows_the_epoch_fenced() -> None:
    fence = Fence("a", 2)
    assert not fence.applied(None)
    rec = record("a", epoch=2)
    assert not fence.applied(rec)
    fenced = dataclasses.replace(rec, fenced=(FencedEpoch(1, "d-0", 0.0),))
    assert not fence.applied(fenced)
    fenced = dataclasses.replace(rec, fenced=(FencedEpoch(2, "d-1", 0.0),))
    assert fence.applied(fenced)


def test_a_move_is_applied_once_the_record_no_longer_holds_the_attempt() -> None:
    move = Move("a", "t-1", 1)
    assert not move.applied(record("a", slots=(slot("t-1", attempt=1),)))
    assert move.applied(record("a", slots=(slot("t-1", attempt=2),)))  # moved back here later
    assert move.applied(record("a"))  # gone: moved or finished
    assert move.applied(None)


def test_the_log_forgets_applied_decisions_and_expired_ones() -> None:
    log = DecisionLog(ttl=10.0)
    records: dict[str, AgentRecord] = {"a": record("a", slots=(slot("t-1"),)), "b": record("b")}
    log.wrote(Move("a", "t-1", 1), 100.0)
    log.wrote(Fence("b", 1), 100.0)
    log.wrote(Fence("c", 1), 105.0)
    log.expire(101.0, records.get)
    assert Move("a", "t-1", 1) in log and Fence("b", 1) in log and len(log) == 3
    records["a"] = record("a")  # t-1 moved away
    log.expire(102.0, records.get)
    assert Move("a", "t-1", 1) not in log and len(log) == 2
    log.expire(110.5, records.get)  # Fence("b", 1) never applied: written again after the ttl
    assert Fence("b", 1) not in log and Fence("c", 1) in log
    assert Move("a", "t-1", 2) not in log and PlanEntry("t-1", 2) not in log
