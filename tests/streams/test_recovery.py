"""How failovers turn out: resume times (recovery, RTO) and progress lost (RPO), per task."""

from __future__ import annotations

import dataclasses

import pytest

from agent_failover import models as m
from agent_failover.streams.metrics import MonitorMetrics
from agent_failover.streams.recovery import KEEP, LOSS_SETTLE, RecoveryBook, stamped
from agent_failover.streams.state import AgentRecord, FencedEpoch, SlotStatus
from tests.streams import factories
from tests.streams.factories import control, event, record, ref, slot


def redispatch(
    task_id: str = "t-1",
    *,
    dispatched_at: float = 1000.0,
    checkpoint: m.CheckpointRef | None = None,
    age: float | None = 3.2,
) -> m.Redispatch:
    return factories.redispatch(
        task_id, dispatched_at=dispatched_at, checkpoint=checkpoint, age=age
    )


def book() -> tuple[RecoveryBook, MonitorMetrics]:
    metrics = MonitorMetrics()
    return RecoveryBook(metrics), metrics


def observed(metrics: MonitorMetrics, name: str) -> tuple[float, float]:
    """A histogram's count and sum."""
    count = metrics.registry.get_sample_value(f"agent_failover_{name}_count")
    total = metrics.registry.get_sample_value(f"agent_failover_{name}_sum")
    assert count is not None and total is not None
    return count, total


def test_a_resume_is_observed_once_whichever_half_comes_first() -> None:
    b, metrics = book()
    b.dispatched(redispatch("t-1"), 1000.1)
    b.claimed("t-1", 2, 1000.25)  # 0.25 s after the decision
    b.claimed("t-2", 2, 1000.5)  # the claimed before its redispatch (another topic)
    b.dispatched(redispatch("t-2", age=None), 1000.6)  # a task of a live agent: no RTO
    b.dispatched(redispatch("t-1"), 1000.7)  # a copy after a restart: ignored
    b.claimed("t-1", 2, 1000.8)
    assert observed(metrics, "recovery_seconds") == (2, pytest.approx(0.25 + 0.5))
    assert observed(metrics, "rto_seconds") == (1, pytest.approx(0.25 + 3.2))


def test_an_unmatched_half_is_forgotten_after_a_while() -> None:
    b, metrics = book()
    b.dispatched(redispatch("t-1"), 1000.0)
    b.settle(1000.0 + KEEP + 1)
    b.claimed("t-1", 2, 1000.0 + KEEP + 2)
    assert observed(metrics, "recovery_seconds") == (0, 0)


def dead_record(*slots: object) -> AgentRecord:
    return record("a", slots=slots)  # type: ignore[arg-type]


def test_the_loss_counts_late_checkpoints_of_the_fenced_attempt() -> None:
    b, metrics = book()
    before = dead_record(slot("t-1", checkpoint=ref(step=3), progress_at=997.0))
    ctl = control(m.ControlKind.FENCE)
    moved = [redispatch("t-1", checkpoint=ref(step=3), dispatched_at=1000.0, age=2.0)]
    b.applied(ctl, before, moved, at=1000.1)
    late = event(m.EventKind.CHECKPOINTED, agent="a", epoch=1, checkpoint=ref(offset=11, step=5))
    b.late_event(late)
    other = event(
        m.EventKind.CHECKPOINTED,
        agent="a",
        epoch=1,
        attempt=7,
        checkpoint=ref(offset=11, step=5, attempt=7),
    )
    b.late_event(other)  # another attempt: not this loss
    b.settle(1000.1 + LOSS_SETTLE - 0.01)
    assert observed(metrics, "rpo_steps") == (0, 0)  # not yet
    b.settle(1000.1 + LOSS_SETTLE)
    assert observed(metrics, "rpo_steps") == (1, 2)  # reached 5, resumes after 3
    # last heartbeat at 1000 - 2 = 998; the checkpoint resumed from was received at 997
    assert observed(metrics, "rpo_seconds") == (1, pytest.approx(1.0))
    b.late_event(late)  # too late now: observed already
    b.settle(2000.0)
    assert observed(metrics, "rpo_steps") == (1, 2)


def test_a_task_resumed_from_the_start_lost_every_step_it_reported() -> None:
    b, metrics = book()
    before = dead_record(
        slot("t-1", progress_at=990.0),  # claimed, no checkpoint yet
        slot("t-2", checkpoint=ref(step=0), progress_at=995.0),
    )
    ctl = control(m.ControlKind.FENCE)
    moved = [redispatch("t-1", age=None), redispatch("t-2", checkpoint=None, age=None)]
    b.applied(ctl, before, moved, at=1000.0)
    b.settle(1000.0 + LOSS_SETTLE)
    # t-1 reported nothing: 0 steps lost; t-2 reported step 0 and resumes from the start: 1.
    assert observed(metrics, "rpo_steps") == (2, 1)
    assert observed(metrics, "rpo_seconds") == (0, 0)  # no last heartbeat known


def test_only_tasks_leaving_a_failed_epoch_have_a_loss() -> None:
    b, metrics = book()
    released = dead_record(slot("t-1", status=SlotStatus.QUEUED, checkpoint=ref(step=4)))
    dispatch = control(m.ControlKind.DISPATCH, reason=m.DispatchReason.RELEASED)
    b.applied(dispatch, released, [redispatch("t-1", checkpoint=ref(step=4))], at=1000.0)
    fenced = dataclasses.replace(released, fenced=(FencedEpoch(1, "d-0", 990.0, 3.0),))
    queued = control(m.ControlKind.DISPATCH, reason=m.DispatchReason.QUEUED)
    b.applied(queued, fenced, [redispatch("t-1", checkpoint=ref(step=4))], at=1000.0)
    b.applied(queued, None, [redispatch("t-1")], at=1000.0)  # nothing known: nothing noted
    b.settle(1000.0 + LOSS_SETTLE)
    assert observed(metrics, "rpo_steps") == (1, 0)  # the queued task of the fenced epoch


def test_the_seconds_lost_need_the_resumed_checkpoints_own_receipt_time() -> None:
    b, metrics = book()
    # The dead attempt reported step 4 after the decision named step 3: the slot's time is
    # that of step 4, not of the checkpoint resumed from.
    before = dead_record(slot("t-1", checkpoint=ref(offset=12, step=4), progress_at=999.0))
    moved = [redispatch("t-1", checkpoint=ref(step=3))]
    b.applied(control(m.ControlKind.FENCE), before, moved, at=1000.0)
    b.settle(1000.0 + LOSS_SETTLE)
    assert observed(metrics, "rpo_steps") == (1, 1)
    assert observed(metrics, "rpo_seconds") == (0, 0)


def test_progress_is_stamped_for_a_new_attempt_or_a_new_checkpoint_only() -> None:
    base = record("a")
    claimed = record("a", slots=(slot("t-1"),))
    first = stamped(base, claimed, "t-1", 10.0)
    assert first.tasks["t-1"].progress_at == 10.0
    # The same attempt and checkpoint rebuilt by an event: the first time is kept.
    rebuilt = record("a", slots=(slot("t-1"),))
    assert stamped(first, rebuilt, "t-1", 11.0).tasks["t-1"].progress_at == 10.0
    assert stamped(first, first, "t-1", 11.0) is first
    checkpointed = record("a", slots=(slot("t-1", checkpoint=ref(), progress_at=10.0),))
    assert stamped(first, checkpointed, "t-1", 12.0).tasks["t-1"].progress_at == 12.0
    next_attempt = record("a", slots=(slot("t-1", attempt=2, progress_at=10.0),))
    assert stamped(first, next_attempt, "t-1", 13.0).tasks["t-1"].progress_at == 13.0
    assert stamped(first, base, "t-1", 14.0) is base  # the task left the record
