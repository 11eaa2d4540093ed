"""Small builders for records and table state used by the monitor's unit tests."""

from __future__ import annotations

from agent_failover import models as m
from agent_failover.streams.detection import DetectionPolicy
from agent_failover.streams.state import AgentRecord, LiveEntry, SlotStatus, TaskSlot

POLICY = DetectionPolicy(heartbeat_timeout=3.0, degraded_after=1.0, grace_period=0.0)


def task(task_id: str = "t-1") -> m.Task:
    return m.Task(task_id=task_id, task_type="demo", payload={"steps": 3})


def ref(
    offset: int = 10,
    step: int = 2,
    partition: int = 0,
    *,
    task_id: str = "t-1",
    attempt: int = 1,
    epoch: int = 1,
) -> m.CheckpointRef:
    """A checkpoint reference; by default of the default event's attempt (``t-1``, 1, epoch 1)."""
    return m.CheckpointRef(
        partition=partition,
        offset=offset,
        step=step,
        task_id=task_id,
        attempt=attempt,
        epoch=epoch,
    )


def event(
    kind: m.EventKind,
    *,
    agent: str = "a",
    epoch: int = 1,
    task_id: str | None = "t-1",
    attempt: int | None = 1,
    checkpoint: m.CheckpointRef | None = None,
    capacity: int | None = None,
    pool: m.Pool | None = None,
    result: m.JSON = None,
    error: str | None = None,
) -> m.TaskEvent:
    lifecycle = kind in (m.EventKind.AGENT_STARTED, m.EventKind.AGENT_STOPPED)
    return m.TaskEvent(
        kind=kind,
        agent_id=agent,
        epoch=epoch,
        at=0.0,
        task_id=None if lifecycle else task_id,
        attempt=None if lifecycle else attempt,
        task=task(task_id or "t-1") if kind is m.EventKind.CLAIMED else None,
        checkpoint=checkpoint,
        capacity=capacity,
        pool=pool,
        result=result,
        error=error,
    )


def slot(
    task_id: str = "t-1",
    *,
    attempt: int = 1,
    epoch: int = 1,
    status: SlotStatus = SlotStatus.OWNED,
    checkpoint: m.CheckpointRef | None = None,
    reason: m.DispatchReason | None = None,
    progress_at: float | None = None,
) -> TaskSlot:
    return TaskSlot(task(task_id), attempt, epoch, status, checkpoint, reason, progress_at)


def record(
    agent: str = "a", *, epoch: int | None = 1, slots: tuple[TaskSlot, ...] = ()
) -> AgentRecord:
    return AgentRecord(agent, 0, epoch=epoch, tasks={s.task_id: s for s in slots})


def live(
    agent: str = "a",
    *,
    epoch: int = 1,
    last_seen: float = 100.0,
    capacity: int = 2,
    in_flight: tuple[str, ...] = (),
    pool: m.Pool = m.Pool.ACTIVE,
    draining: bool = False,
) -> LiveEntry:
    return LiveEntry(agent, epoch, 0, last_seen, capacity, in_flight, pool, draining)


def control(
    kind: m.ControlKind,
    *,
    agent: str = "a",
    epoch: int = 1,
    plan: tuple[m.PlanEntry, ...] = (),
    reason: m.DispatchReason | None = m.DispatchReason.HEARTBEAT_TIMEOUT,
    decision_id: str = "d-1",
) -> m.Control:
    return m.Control(
        kind=kind,
        agent_id=agent,
        epoch=epoch,
        decision_id=decision_id,
        issued_at=50.0,
        reason=reason,
        plan=plan,
    )


def new_work(
    task_id: str = "t-1",
    *,
    target: str = "a",
    epoch: int = 1,
    partition: int = 0,
    offset: int = 0,
    decision_id: str = "d-new",
) -> m.Redispatch:
    """An intake decision (attempt 1, reason new) about ``tasks[partition]@offset``."""
    return m.Redispatch(
        task=task(task_id),
        attempt=1,
        target_agent_id=target,
        target_epoch=epoch,
        reason=m.DispatchReason.NEW,
        decision_id=decision_id,
        dispatched_at=1.0,
        source=m.SourceRef(partition=partition, offset=offset),
    )


def redispatch(
    task_id: str = "t-1",
    *,
    attempt: int = 2,
    target: str = "b",
    target_epoch: int = 5,
    source: tuple[str, int] = ("a", 1),
    checkpoint: m.CheckpointRef | None = None,
    dispatched_at: float = 1000.0,
    age: float | None = None,
    reason: m.DispatchReason = m.DispatchReason.HEARTBEAT_TIMEOUT,
) -> m.Redispatch:
    """A re-dispatch of ``task_id`` from ``source`` (agent, epoch) to ``target``;
    ``age``: its ``last_heartbeat_age_s``."""
    return m.Redispatch(
        task=task(task_id),
        attempt=attempt,
        target_agent_id=target,
        target_epoch=target_epoch,
        reason=reason,
        from_agent_id=source[0],
        from_epoch=source[1],
        decision_id="d-9",
        dispatched_at=dispatched_at,
        checkpoint=checkpoint,
        last_heartbeat_age_s=age,
    )
