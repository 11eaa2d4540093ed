"""Applying task events and dispatch records to an agent's record: pure functions.

Task events (``task-events``) and dispatches (``tasks.priority``: new work and moved tasks alike)
reach the monitor on two
topics whose relative order is not guaranteed, so every update is ordered by epoch and attempt
instead of arrival: an event about an older attempt than the one held never overwrites it, a
re-dispatch seen after the ``claimed`` it caused only fills in what is missing, and events from a
fenced epoch are rejected (see "Which writes count" in docs/protocol.md).
"""

from __future__ import annotations

import dataclasses

from agent_failover.models import (
    CheckpointRef,
    DispatchReason,
    EventKind,
    Redispatch,
    Task,
    TaskEvent,
)
from agent_failover.streams.state import (
    KEEP_DONE,
    KEEP_FENCED,
    AgentRecord,
    SlotStatus,
    TaskSlot,
    bounded,
)

# Reasons an event is not applied (it is valid, only superseded): counted, never dead-lettered.
FENCED_EPOCH = "fenced_epoch"
SUPERSEDED_ATTEMPT = "superseded_attempt"
UNKNOWN_TASK = "unknown_task"
STALE_EPOCH = "stale_epoch"
DUPLICATE = "duplicate"


@dataclasses.dataclass(frozen=True, slots=True)
class EventResult:
    """The record after an event, why the event was not applied (if so), and which task ids are
    now queued and need a dispatch decision at once (released tasks, late claims)."""

    record: AgentRecord
    rejected: str | None = None
    to_dispatch: tuple[str, ...] = ()


def _stale(rec: AgentRecord, task_id: str, attempt: int) -> bool:
    """True if a later attempt of the task is known here, or this attempt already finished."""
    held = rec.tasks.get(task_id)
    if held is not None and held.attempt > attempt:
        return True
    if rec.is_done(task_id, attempt):
        return True
    return any(t == task_id and a > attempt for t, a in rec.decided)


def _newer(a: CheckpointRef | None, b: CheckpointRef | None) -> CheckpointRef | None:
    """The later of two checkpoints of one attempt (one task's checkpoints share a partition)."""
    if a is None or b is None:
        return a or b
    return a if (a.offset, a.step) >= (b.offset, b.step) else b


def _observe_epoch(rec: AgentRecord, epoch: int) -> AgentRecord:
    """Make ``epoch`` the current one if it is newer; the replaced one, if still open, becomes
    superseded (it is failed with reason ``restarted``)."""
    if rec.epoch is not None and epoch <= rec.epoch:
        return rec
    superseded = rec.superseded
    old = rec.epoch
    if old is not None and old not in rec.stopped and not rec.is_fenced(old):
        superseded = bounded((*superseded, old), KEEP_FENCED)
    return dataclasses.replace(rec, epoch=epoch, superseded=superseded)


def _with_slot(rec: AgentRecord, slot: TaskSlot) -> AgentRecord:
    tasks = dict(rec.tasks)
    tasks[slot.task_id] = slot
    return dataclasses.replace(rec, tasks=tasks)


def apply_event(record: AgentRecord | None, ev: TaskEvent, partition: int) -> EventResult:
    """Apply one validated task event from ``task-events`` to its agent's record."""
    rec = record if record is not None else AgentRecord(ev.agent_id, partition)
    if rec.is_fenced(ev.epoch):
        return _late(rec, ev)
    if ev.kind is EventKind.AGENT_STARTED:
        if rec.epoch is not None and ev.epoch < rec.epoch:
            # An older process with the same agent id announced itself late: it is still open.
            if ev.epoch in rec.superseded or ev.epoch in rec.stopped:
                return EventResult(rec, STALE_EPOCH)
            sup = bounded((*rec.superseded, ev.epoch), KEEP_FENCED)
            return EventResult(dataclasses.replace(rec, superseded=sup), STALE_EPOCH)
        rec = _observe_epoch(rec, ev.epoch)
        return EventResult(
            dataclasses.replace(
                rec,
                capacity=ev.capacity if ev.capacity is not None else rec.capacity,
                pool=ev.pool or rec.pool,
            )
        )
    if ev.kind is EventKind.AGENT_STOPPED:
        rec = _observe_epoch(rec, ev.epoch)
        stopped = bounded((*rec.stopped, ev.epoch), KEEP_FENCED)
        sup = tuple(e for e in rec.superseded if e != ev.epoch)
        return EventResult(dataclasses.replace(rec, stopped=stopped, superseded=sup))
    assert ev.task_id is not None and ev.attempt is not None  # validated by TaskEvent
    rec = _observe_epoch(rec, ev.epoch)
    if _stale(rec, ev.task_id, ev.attempt):
        return EventResult(rec, SUPERSEDED_ATTEMPT)
    held = rec.tasks.get(ev.task_id)
    same = held if held is not None and held.attempt == ev.attempt else None
    if ev.kind is EventKind.CLAIMED:
        assert ev.task is not None
        if same is not None:
            # The dispatch (other topic) already made it ours, or it is queued to move on.
            return EventResult(rec, DUPLICATE if same.status is SlotStatus.QUEUED else None)
        slot = TaskSlot(task=ev.task, attempt=ev.attempt, epoch=ev.epoch, status=SlotStatus.OWNED)
        return EventResult(_with_slot(rec, slot))
    if same is None:
        return EventResult(rec, UNKNOWN_TASK)
    if ev.kind is EventKind.CHECKPOINTED:
        slot = dataclasses.replace(same, checkpoint=_newer(same.checkpoint, ev.checkpoint))
        return EventResult(_with_slot(rec, slot))
    if ev.kind in (EventKind.COMPLETED, EventKind.FAILED):
        tasks = {k: v for k, v in rec.tasks.items() if k != ev.task_id}
        done = bounded((*rec.done, (ev.task_id, ev.attempt)), KEEP_DONE)
        return EventResult(dataclasses.replace(rec, tasks=tasks, done=done))
    # RELEASED: the agent let the task go with a final checkpoint: move it at once.
    if same.status is SlotStatus.QUEUED:
        return EventResult(rec, DUPLICATE)
    slot = dataclasses.replace(
        same,
        status=SlotStatus.QUEUED,
        reason=DispatchReason.RELEASED,
        checkpoint=_newer(same.checkpoint, ev.checkpoint),
    )
    return EventResult(_with_slot(rec, slot), to_dispatch=(ev.task_id,))


def _late(rec: AgentRecord, ev: TaskEvent) -> EventResult:
    """An event from a fenced epoch. Its writes do not count; but a ``claimed`` of a task that
    reached the epoch after the fence means the task has nobody: queue it to move on."""
    if ev.kind is not EventKind.CLAIMED:
        return EventResult(rec, FENCED_EPOCH)
    assert ev.task_id is not None and ev.attempt is not None and ev.task is not None
    if _stale(rec, ev.task_id, ev.attempt):
        return EventResult(rec, FENCED_EPOCH)
    held = rec.tasks.get(ev.task_id)
    same = held if held is not None and held.attempt == ev.attempt else None
    if same is not None and same.status is SlotStatus.QUEUED:
        return EventResult(rec, FENCED_EPOCH)
    slot = _queued(ev.task, ev.attempt, ev.epoch, same.checkpoint if same else None)
    return EventResult(_with_slot(rec, slot), FENCED_EPOCH, (ev.task_id,))


def _queued(task: Task, attempt: int, epoch: int, checkpoint: CheckpointRef | None) -> TaskSlot:
    return TaskSlot(
        task, attempt, epoch, SlotStatus.QUEUED, checkpoint, reason=DispatchReason.LATE_CLAIM
    )


def apply_redispatch(record: AgentRecord | None, rd: Redispatch, partition: int) -> EventResult:
    """Apply a dispatch (from ``tasks.priority``) to its TARGET agent's record: the task is held
    by the target epoch from now on, new work (attempt 1) and moved tasks alike.

    Copies of one ``(task_id, attempt)`` are ignored; one that reaches an epoch already fenced is
    a late assignment and is queued for a new decision at once.
    """
    rec = record if record is not None else AgentRecord(rd.target_agent_id, partition)
    if _stale(rec, rd.task_id, rd.attempt):
        return EventResult(rec, SUPERSEDED_ATTEMPT)
    held = rec.tasks.get(rd.task_id)
    if held is not None and held.attempt == rd.attempt:
        if held.checkpoint is not None or rd.checkpoint is None:
            return EventResult(rec, DUPLICATE)
        # `claimed` (other topic) came first; the resume point comes from the re-dispatch.
        return EventResult(_with_slot(rec, dataclasses.replace(held, checkpoint=rd.checkpoint)))
    if rec.is_fenced(rd.target_epoch):
        slot = _queued(rd.task, rd.attempt, rd.target_epoch, rd.checkpoint)
        return EventResult(_with_slot(rec, slot), FENCED_EPOCH, (rd.task_id,))
    slot = TaskSlot(rd.task, rd.attempt, rd.target_epoch, SlotStatus.OWNED, rd.checkpoint)
    return EventResult(_with_slot(rec, slot))
