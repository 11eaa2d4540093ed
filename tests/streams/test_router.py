"""The router: bad records to the dead-letter topic, good ones to their part."""

from __future__ import annotations

import time

import orjson
import pytest

from agent_failover.config import Topics
from agent_failover.models import (
    ControlKind,
    DeadLetter,
    DispatchReason,
    EventKind,
)
from agent_failover.streams.state import AgentRecord, FencedEpoch, SlotStatus
from tests.streams.factories import event, redispatch, ref
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
    labels = {"topic": "task-events", "reason": "not_json", "source": "monitor"}
    assert w.gauge("agent_failover_dead_letters_total", labels) == 1
    assert w.gauge("agent_failover_dead_letters_total", {**labels, "topic": "control"}) == 1


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
    rd = redispatch("t-7", target=A, target_epoch=1, source=("z", 3), dispatched_at=1.0)
    w.deliver(TOPICS.priority, A, rd.encode(), T0, partition(w, A))
    assert w.table[A].tasks["t-7"].status is SlotStatus.QUEUED
    (ctl,) = w.controls()
    assert (ctl.agent_id, ctl.reason, [e.target_agent_id for e in ctl.plan]) == (
        A,
        DispatchReason.LATE_CLAIM,
        [B],
    )


def dead_letters(w: Worker, topic: str, reason: str) -> float | None:
    labels = {"topic": topic, "reason": reason, "source": "monitor"}
    return w.gauge("agent_failover_dead_letters_total", labels)


def test_each_dead_letter_is_counted_with_its_reason() -> None:
    w = worker()
    p = partition(w, A)
    started = event(EventKind.AGENT_STARTED, agent=A).to_dict()
    w.deliver(TOPICS.task_events, A, b"[1, 2", T0, p)
    w.deliver(TOPICS.task_events, A, orjson.dumps({**started, "epoch": -1}), T0, p)
    w.deliver(TOPICS.task_events, A, orjson.dumps({**started, "schema_version": 9}), T0, p)
    w.deliver(TOPICS.task_events, A, orjson.dumps(started), T0, 1 - p)
    assert len(letters(w)) == 4
    for reason in ("not_json", "invalid", "unsupported_version", "wrong_partition"):
        assert dead_letters(w, "task-events", reason) == 1, reason


def test_completed_and_failed_tasks_are_counted_once() -> None:
    w = worker()
    p = partition(w, A)
    for task_id in ("t-1", "t-2"):
        w.deliver(
            TOPICS.task_events,
            A,
            event(EventKind.CLAIMED, agent=A, task_id=task_id).encode(),
            T0,
            p,
        )
    done = event(EventKind.COMPLETED, agent=A, task_id="t-1").encode()
    w.deliver(TOPICS.task_events, A, done, T0, p)
    w.deliver(TOPICS.task_events, A, done, T0, p)  # a copy: superseded, not counted again
    w.deliver(
        TOPICS.task_events, A, event(EventKind.FAILED, agent=A, task_id="t-2").encode(), T0, p
    )
    assert w.gauge("agent_failover_tasks_completed_total") == 1
    assert w.gauge("agent_failover_tasks_failed_total") == 1


def test_progress_times_are_kept_in_the_slot_and_a_resume_is_observed() -> None:
    w = worker()
    p = partition(w, B)
    before = time.time()
    rd = redispatch(
        "t-7",
        target=B,
        target_epoch=4,
        checkpoint=ref(step=2, task_id="t-7"),
        dispatched_at=before - 0.5,
        age=3.0,
    )
    w.deliver(TOPICS.priority, B, rd.encode(), T0, p)
    stamped_at = w.table[B].tasks["t-7"].progress_at
    assert stamped_at is not None and before <= stamped_at <= time.time()
    claimed = event(EventKind.CLAIMED, agent=B, epoch=4, task_id="t-7", attempt=2)
    w.deliver(TOPICS.task_events, B, claimed.encode(), T0, p)
    assert w.table[B].tasks["t-7"].progress_at == stamped_at  # same attempt and checkpoint
    recovery = w.gauge("agent_failover_recovery_seconds_sum")
    assert w.gauge("agent_failover_recovery_seconds_count") == 1
    assert recovery is not None and 0.5 <= recovery <= time.time() - before + 0.5
    rto = w.gauge("agent_failover_rto_seconds_sum")
    assert rto is not None and rto == pytest.approx(recovery + 3.0)
    newer = event(
        EventKind.CHECKPOINTED,
        agent=B,
        epoch=4,
        task_id="t-7",
        attempt=2,
        checkpoint=ref(offset=20, step=3, task_id="t-7", attempt=2, epoch=4),
    )
    w.deliver(TOPICS.task_events, B, newer.encode(), T0, p)
    assert (w.table[B].tasks["t-7"].progress_at or 0) >= stamped_at
