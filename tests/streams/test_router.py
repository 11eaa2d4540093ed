"""The router: bad records to the dead-letter topic, good ones to their part."""

from __future__ import annotations

from agent_failover.config import Topics
from agent_failover.models import (
    ControlKind,
    DeadLetter,
    DispatchReason,
    EventKind,
    Redispatch,
)
from streams.state import AgentRecord, FencedEpoch, SlotStatus
from tests.streams.factories import event, ref, task
from tests.streams.harness import T0, Worker

TOPICS = Topics(prefix="x.", agent_partitions=2)
A, B = "a", "b"  # both partitions are owned: wherever they hash, both are this worker's


def worker() -> Worker:
    w = Worker({}, topics=TOPICS)
    w.monitor.ownership.set({0, 1}, T0)
    return w


def partition(w: Worker, agent: str) -> int:
    return w.monitor.ownership.partition_of(agent)


def letters(w: Worker) -> list[DeadLetter]:
    return [DeadLetter.decode(s.value) for s in w.outbox.take(TOPICS.dead_letter)]


def test_a_record_that_does_not_decode_is_dead_lettered_and_nothing_changes() -> None:
    w = worker()
    w.deliver(TOPICS.task_events, A, b"{not json", T0, partition(w, A))
    w.deliver(TOPICS.control, A, None, T0, partition(w, A))
    reasons = [d.reason for d in letters(w)]
    assert len(reasons) == 2 and all(reasons)
    assert w.table == {}
    assert w.gauge("agent_failover_dead_letters_total", {"topic": TOPICS.task_events}) == 1


def test_a_record_in_another_agents_partition_is_dead_lettered_with_the_expected_one() -> None:
    w = worker()
    wrong = 1 - partition(w, A)
    w.deliver(TOPICS.task_events, A, event(EventKind.AGENT_STARTED, agent=A).encode(), T0, wrong)
    (letter,) = letters(w)
    assert (letter.topic, letter.partition) == (TOPICS.task_events, wrong)
    assert f"expected {partition(w, A)}" in letter.reason
    assert w.table == {}


def test_events_update_the_record_and_a_released_task_moves_at_once() -> None:
    w = worker()
    w.live.beat([B], T0, epoch=4)
    p = partition(w, A)
    w.deliver(TOPICS.task_events, A, event(EventKind.CLAIMED, agent=A).encode(), T0, p)
    assert w.table[A].tasks["t-1"].status is SlotStatus.OWNED
    assert w.monitor.index.drain_written() == {A}  # the next tick asks about it
    released = event(EventKind.RELEASED, agent=A, checkpoint=ref())
    w.deliver(TOPICS.task_events, A, released.encode(), T0 + 0.1, p)
    (ctl,) = w.controls()
    assert (ctl.kind, ctl.agent_id, ctl.reason) == (
        ControlKind.DISPATCH,
        A,
        DispatchReason.RELEASED,
    )
    assert [(e.task_id, e.attempt, e.target_agent_id, e.checkpoint) for e in ctl.plan] == [
        ("t-1", 2, B, ref())
    ]
    w.deliver(TOPICS.task_events, A, released.encode(), T0 + 0.2, p)  # a copy: counted only
    assert w.controls() == []
    assert w.gauge("agent_failover_events_rejected_total", {"reason": "duplicate"}) == 1


def test_a_redispatch_to_a_fenced_epoch_is_queued_and_moves_on_at_once() -> None:
    w = worker()
    w.live.beat([B], T0, epoch=4)
    fenced = AgentRecord(A, partition(w, A), epoch=1, fenced=(FencedEpoch(1, "d", 0.0),))
    w.monitor.index.store(A, fenced)
    rd = Redispatch(
        task=task("t-7"),
        attempt=2,
        target_agent_id=A,
        target_epoch=1,
        reason=DispatchReason.HEARTBEAT_TIMEOUT,
        from_agent_id="z",
        from_epoch=3,
        decision_id="d-9",
        dispatched_at=1.0,
    )
    w.deliver(TOPICS.priority, A, rd.encode(), T0, partition(w, A))
    assert w.table[A].tasks["t-7"].status is SlotStatus.QUEUED
    (ctl,) = w.controls()
    assert (ctl.agent_id, ctl.reason, [e.target_agent_id for e in ctl.plan]) == (
        A,
        DispatchReason.LATE_CLAIM,
        [B],
    )
