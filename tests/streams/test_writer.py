"""The decision writer: fences and dispatches written once each, and decisions applied."""

from __future__ import annotations

import asyncio

from agent_failover.config import Topics
from agent_failover.models import (
    ControlKind,
    DispatchReason,
    Failover,
    PlanEntry,
    Redispatch,
)
from streams.decisions import Fence
from streams.detection import DeadEpoch
from streams.state import AgentRecord, SlotStatus
from streams.targets import POOL_TTL
from tests.streams.factories import record, ref, slot
from tests.streams.harness import T0, Worker

TOPICS = Topics(prefix="x.", agent_partitions=1)
REF = ref(offset=7, step=3)
TIMEOUT = DeadEpoch("dead", 1, DispatchReason.HEARTBEAT_TIMEOUT, 4.0)


def worker(table: dict[str, AgentRecord]) -> Worker:
    w = Worker(table, topics=TOPICS)
    w.monitor.ownership.set({0}, T0)
    return w


def counter(w: Worker, name: str, **labels: str) -> float:
    return w.gauge(name, labels) or 0.0


def test_a_fence_moves_the_epochs_tasks_and_is_written_once() -> None:
    dead = record("dead", slots=(slot("t-1", checkpoint=REF), slot("t-2", epoch=2)))
    w = worker({"dead": dead})
    w.live.beat(["b"], T0, epoch=5)
    asyncio.run(w.monitor.writer.fence(dead, TIMEOUT, T0))
    (ctl,) = w.controls()
    assert (ctl.kind, ctl.agent_id, ctl.epoch, ctl.reason, ctl.monitor_id) == (
        ControlKind.FENCE,
        "dead",
        1,
        DispatchReason.HEARTBEAT_TIMEOUT,
        "w1",
    )
    assert ctl.plan == (PlanEntry("t-1", 2, "b", 5, checkpoint=REF),)  # epoch 2's task stays
    assert ctl.last_heartbeat_age_s == 4.0
    assert Fence("dead", 1) in w.monitor.decisions
    assert w.monitor.reservations.counts() == {("b", 5): 1}
    assert counter(w, "agent_failover_failovers_total", reason="heartbeat_timeout") == 1
    asyncio.run(w.monitor.writer.fence(dead, TIMEOUT, T0 + 0.1))  # not yet seen applied
    assert w.controls() == []


def test_a_dispatch_groups_by_epoch_places_what_it_can_and_writes_each_move_once() -> None:
    rec = record(
        "q",
        slots=(
            slot("t-1", status=SlotStatus.QUEUED, reason=DispatchReason.RELEASED),
            slot("t-2", epoch=2, status=SlotStatus.QUEUED),
        ),
    )
    w = worker({"q": rec})
    slots = list(rec.tasks.values())
    writer = w.monitor.writer
    assert asyncio.run(writer.dispatch(rec, slots, T0)) == 2  # nowhere to go
    assert w.controls() == []
    w.live.beat(["b"], T0, epoch=5)
    assert asyncio.run(writer.dispatch(rec, slots, T0 + POOL_TTL)) == 0
    controls = w.controls()
    assert [(c.kind, c.epoch, c.reason) for c in controls] == [
        (ControlKind.DISPATCH, 1, DispatchReason.RELEASED),
        (ControlKind.DISPATCH, 2, DispatchReason.QUEUED),
    ]
    assert [e.target_agent_id for c in controls for e in c.plan] == ["b", "b"]
    assert asyncio.run(writer.dispatch(rec, slots, T0 + POOL_TTL)) == 0
    assert w.controls() == []  # written, not yet applied


def test_queued_tasks_of_owned_records_are_dispatched_and_counted() -> None:
    rec = record("q", slots=(slot("t-1", status=SlotStatus.QUEUED), slot("t-2")))
    w = worker({"q": rec})
    w.monitor.index.rebuild(frozenset({0}))
    asyncio.run(w.monitor.writer.dispatch_queued(T0))
    assert counter(w, "agent_failover_tasks_queued") == 1
    assert counter(w, "agent_failover_no_healthy_agent") == 1
    assert w.controls() == []


def test_applying_a_fence_sends_its_moves_then_records_it_and_a_copy_is_a_duplicate() -> None:
    dead = record("dead", slots=(slot("t-1", checkpoint=REF),))
    w = worker({"dead": dead})
    w.live.beat(["b"], T0, epoch=5)
    asyncio.run(w.monitor.writer.fence(dead, TIMEOUT, T0))
    (ctl,) = w.controls()
    w.apply(ctl, T0 + 0.1)
    (sent,) = w.outbox.take(TOPICS.priority)
    rd = Redispatch.decode(sent.value)
    assert (rd.task_id, rd.attempt, rd.target_agent_id, rd.target_epoch, rd.checkpoint) == (
        "t-1",
        2,
        "b",
        5,
        REF,
    )
    assert (sent.key, sent.partition) == (b"b", 0)
    (audit,) = w.outbox.take(TOPICS.failovers)
    assert Failover.decode(audit.value).decision_id == ctl.decision_id
    stored = w.table["dead"]
    assert stored.is_fenced(1) and stored.tasks == {}
    assert w.monitor.index.get("dead") is stored
    w.apply(ctl, T0 + 0.2)
    assert w.outbox.sent == []
    assert counter(w, "agent_failover_duplicate_decisions_total") == 1
