"""Task events and re-dispatches applied to an agent's record, in any cross-topic order."""

from __future__ import annotations

import dataclasses

from agent_failover.models import DispatchReason, EventKind, Pool, Redispatch
from agent_failover.streams import events as ev
from agent_failover.streams.events import apply_event, apply_redispatch
from agent_failover.streams.state import (
    AgentRecord,
    FencedEpoch,
    SlotStatus,
    decode_record,
    encode_record,
)
from tests.streams.factories import event, new_work, record, ref, slot, task


def fenced(rec_epoch: int = 1) -> AgentRecord:
    return dataclasses.replace(record(epoch=rec_epoch), fenced=(FencedEpoch(rec_epoch, "d", 0.0),))


def redispatch(*, attempt: int = 2, epoch: int = 1) -> Redispatch:
    return Redispatch(
        task=task(),
        attempt=attempt,
        target_agent_id="a",
        target_epoch=epoch,
        reason=DispatchReason.HEARTBEAT_TIMEOUT,
        from_agent_id="x",
        from_epoch=1,
        decision_id="d",
        dispatched_at=1.0,
        checkpoint=ref(),
    )


def test_task_lifecycle() -> None:
    rec = apply_event(None, event(EventKind.AGENT_STARTED, capacity=3, pool=Pool.STANDBY), 2).record
    assert (rec.epoch, rec.capacity, rec.pool, rec.partition) == (1, 3, Pool.STANDBY, 2)
    rec = apply_redispatch(rec, new_work(), 2).record  # the intake's dispatch of new work
    assert rec.tasks["t-1"].status is SlotStatus.OWNED and rec.tasks["t-1"].attempt == 1
    out = apply_event(rec, event(EventKind.CLAIMED), 2)
    assert out.rejected is None and out.record == rec  # the dispatch already made it its own
    rec = apply_event(rec, event(EventKind.CHECKPOINTED, checkpoint=ref(11, 3)), 2).record
    rec = apply_event(rec, event(EventKind.CHECKPOINTED, checkpoint=ref(10, 2)), 2).record
    assert rec.tasks["t-1"].checkpoint == ref(11, 3)  # never moves backwards
    rec = apply_event(rec, event(EventKind.COMPLETED), 2).record
    assert rec.tasks == {} and rec.is_done("t-1", 1)
    again = apply_event(rec, event(EventKind.CLAIMED), 2)
    assert again.rejected == ev.SUPERSEDED_ATTEMPT


def test_events_from_a_fenced_epoch_are_rejected() -> None:
    rec = dataclasses.replace(fenced(), tasks={"t-1": slot(status=SlotStatus.QUEUED)})
    out = apply_event(rec, event(EventKind.CHECKPOINTED, checkpoint=ref(99, 9)), 0)
    assert out.rejected == ev.FENCED_EPOCH and out.record == rec
    assert apply_event(rec, event(EventKind.COMPLETED), 0).rejected == ev.FENCED_EPOCH


def test_late_claimed_on_a_fenced_epoch_needs_a_dispatch() -> None:
    out = apply_event(fenced(), event(EventKind.CLAIMED, task_id="t-9"), 0)
    assert out.rejected == ev.FENCED_EPOCH and out.to_dispatch == ("t-9",)
    slot_ = out.record.tasks["t-9"]
    assert slot_.status is SlotStatus.QUEUED and slot_.reason is DispatchReason.LATE_CLAIM
    # A second copy does not queue it twice.
    assert apply_event(out.record, event(EventKind.CLAIMED, task_id="t-9"), 0).to_dispatch == ()


def test_new_work_dispatched_to_a_fenced_epoch_moves_on_as_attempt_two() -> None:
    out = apply_redispatch(fenced(), new_work(), 0)
    assert out.rejected == ev.FENCED_EPOCH and out.to_dispatch == ("t-1",)
    s = out.record.tasks["t-1"]
    assert (s.attempt, s.status, s.reason, s.checkpoint) == (
        1,
        SlotStatus.QUEUED,
        DispatchReason.LATE_CLAIM,
        None,
    )


def test_released_is_queued_for_immediate_dispatch_with_its_checkpoint() -> None:
    rec = record(slots=(slot(checkpoint=ref(3, 1)),))
    out = apply_event(rec, event(EventKind.RELEASED, checkpoint=ref(8, 4)), 0)
    assert out.to_dispatch == ("t-1",)
    s = out.record.tasks["t-1"]
    assert (s.status, s.reason, s.checkpoint) == (
        SlotStatus.QUEUED,
        DispatchReason.RELEASED,
        ref(8, 4),
    )
    assert apply_event(out.record, event(EventKind.RELEASED), 0).rejected == ev.DUPLICATE


def test_new_epoch_supersedes_the_open_one() -> None:
    rec = apply_event(record(epoch=1), event(EventKind.AGENT_STARTED, epoch=2), 0).record
    assert rec.epoch == 2 and rec.superseded == (1,)
    # A stopped epoch is not open: restarting after a clean stop supersedes nothing.
    rec = apply_event(record(epoch=1), event(EventKind.AGENT_STOPPED, epoch=1), 0).record
    rec = apply_event(rec, event(EventKind.AGENT_STARTED, epoch=2), 0).record
    assert rec.superseded == ()


def test_stale_agent_started_marks_the_old_epoch_superseded() -> None:
    out = apply_event(record(epoch=5), event(EventKind.AGENT_STARTED, epoch=3), 0)
    assert out.rejected == ev.STALE_EPOCH and out.record.superseded == (3,)


def test_checkpoint_for_unknown_task_is_rejected() -> None:
    out = apply_event(record(), event(EventKind.CHECKPOINTED, checkpoint=ref()), 0)
    assert out.rejected == ev.UNKNOWN_TASK


def test_redispatch_is_recorded_on_the_target_and_duplicates_ignored() -> None:
    out = apply_redispatch(record(), redispatch(), 0)
    s = out.record.tasks["t-1"]
    assert (s.attempt, s.epoch, s.status, s.checkpoint) == (2, 1, SlotStatus.OWNED, ref())
    assert apply_redispatch(out.record, redispatch(), 0).rejected == ev.DUPLICATE


def test_claimed_before_its_redispatch_gets_the_checkpoint_from_it() -> None:
    rec = apply_event(record(), event(EventKind.CLAIMED, attempt=2), 0).record
    assert rec.tasks["t-1"].checkpoint is None
    rec = apply_redispatch(rec, redispatch(), 0).record
    assert rec.tasks["t-1"].checkpoint == ref()
    assert rec.tasks["t-1"].status is SlotStatus.OWNED


def test_redispatch_after_completion_is_ignored() -> None:
    rec = apply_event(record(), event(EventKind.CLAIMED, attempt=2), 0).record
    rec = apply_event(rec, event(EventKind.COMPLETED, attempt=2), 0).record
    assert apply_redispatch(rec, redispatch(), 0).rejected == ev.SUPERSEDED_ATTEMPT


def test_redispatch_to_a_fenced_epoch_is_a_late_assignment() -> None:
    out = apply_redispatch(fenced(), redispatch(), 0)
    assert out.to_dispatch == ("t-1",)
    s = out.record.tasks["t-1"]
    assert (s.status, s.reason, s.checkpoint) == (
        SlotStatus.QUEUED,
        DispatchReason.LATE_CLAIM,
        ref(),
    )


def test_record_codec_round_trip() -> None:
    rec = dataclasses.replace(
        record(
            slots=(
                slot(
                    checkpoint=ref(),
                    status=SlotStatus.QUEUED,
                    reason=DispatchReason.RELEASED,
                ),
            )
        ),
        fenced=(FencedEpoch(0, "d", 1.5),),
        superseded=(3,),
        stopped=(2,),
        decided=(("t-0", 2),),
        done=(("t-x", 1),),
    )
    assert decode_record(encode_record(rec)) == rec
