"""The decision writer: fences and dispatches written once each, and decisions applied."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from agent_failover.config import Topics
from agent_failover.models import (
    ControlKind,
    DispatchReason,
    Failover,
    PlanEntry,
    Redispatch,
)
from agent_failover.streams.decisions import Fence
from agent_failover.streams.detection import DeadEpoch
from agent_failover.streams.state import AgentRecord, FencedEpoch, SlotStatus
from agent_failover.streams.targets import POOL_TTL
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
    assert counter(w, "agent_failover_tasks_waiting_for_agent") == 1
    assert counter(w, "agent_failover_tasks_stuck") == 0  # no agent has a free slot
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
    assert counter(w, "agent_failover_decisions_duplicate_total") == 1
    assert counter(w, "agent_failover_tasks_moved_total", reason="heartbeat_timeout") == 1


def histogram(w: Worker, name: str) -> tuple[float, float]:
    return counter(w, f"{name}_count"), counter(w, f"{name}_sum")


def test_detection_delay_is_the_overhead_above_the_timeout() -> None:
    dead = record("dead")
    w = worker({"dead": dead})
    asyncio.run(w.monitor.writer.fence(dead, TIMEOUT, T0))  # silent 4.0 s, timeout 3.0 s
    restarted = DeadEpoch("dead", 2, DispatchReason.RESTARTED, 0.4)  # not a timeout: not counted
    asyncio.run(w.monitor.writer.fence(dead, restarted, T0))
    name = "agent_failover_detection_delay_seconds"
    assert histogram(w, name) == (1, 1.0)
    assert counter(w, f"{name}_bucket", le="0.5") == 0
    assert counter(w, f"{name}_bucket", le="1.0") == 1


def test_a_dispatch_off_a_fenced_epoch_says_how_long_it_has_been_silent() -> None:
    fenced_at = time.time() - 10.0
    rec = dataclasses.replace(
        record("z", slots=(slot("t-1", status=SlotStatus.QUEUED, checkpoint=REF),)),
        fenced=(FencedEpoch(1, "d-1", fenced_at, 3.5),),
    )
    live_rec = record("y", slots=(slot("t-2", status=SlotStatus.QUEUED),))
    w = worker({"z": rec, "y": live_rec})
    w.live.beat(["b"], T0, epoch=5)
    asyncio.run(w.monitor.writer.dispatch(rec, list(rec.tasks.values()), T0))
    asyncio.run(w.monitor.writer.dispatch(live_rec, list(live_rec.tasks.values()), T0))
    off_fenced, off_live = w.controls()
    assert off_fenced.last_heartbeat_age_s == pytest.approx(13.5, abs=1.0)
    assert off_live.last_heartbeat_age_s is None
    w.apply(off_fenced, T0)
    (sent,) = w.outbox.take(TOPICS.priority)
    assert Redispatch.decode(sent.value).last_heartbeat_age_s == off_fenced.last_heartbeat_age_s


def test_a_task_waiting_to_move_while_a_slot_is_free_counts_as_stuck() -> None:
    rec = record("q", slots=(slot("t-1", status=SlotStatus.QUEUED),))
    w = worker({"q": rec})
    w.monitor.index.rebuild(frozenset({0}))
    writer = w.monitor.writer
    stuck_after = w.config.stuck_after

    def stuck() -> float:
        return counter(w, "agent_failover_tasks_stuck")

    asyncio.run(writer.dispatch_queued(T0))
    asyncio.run(writer.dispatch_queued(T0 + stuck_after + 1))
    assert stuck() == 0  # it waited, but no agent had a free slot
    w.live.beat(["b"], T0 + stuck_after + 1, epoch=5)
    asyncio.run(writer.dispatch_queued(T0 + stuck_after + 1 + POOL_TTL))
    (ctl,) = w.controls()  # placed on b; until the decision is applied it still waits
    assert counter(w, "agent_failover_tasks_waiting_for_agent") == 0
    assert stuck() == 0
    late = T0 + 2 * stuck_after + 2
    w.live.beat(["b"], late, epoch=5)
    asyncio.run(writer.dispatch_queued(late))
    assert stuck() == 1  # b has had a free slot all along and the decision is not applied
    w.apply(ctl, late)
    w.monitor.index.rebuild(frozenset({0}))
    asyncio.run(writer.dispatch_queued(late))
    assert stuck() == 0
