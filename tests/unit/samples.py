"""One valid record of every kind, shared by the codec and schema tests."""

from __future__ import annotations

from agent_failover import models as m

TASK = m.Task(
    task_id="t-1", task_type="summarise", payload={"doc": "a", "steps": 3}, submitted_at=1.5
)
#: Attempt 1's step 4 of task t-1, by agent a-1's epoch 7.
REF = m.CheckpointRef(partition=2, offset=41, step=4, task_id="t-1", attempt=1, epoch=7)

SAMPLES: list[tuple[str, m.Record]] = [
    (
        "heartbeat",
        m.Heartbeat(
            agent_id="a-1",
            epoch=7,
            seq=3,
            sent_at=10.0,
            interval_s=1.0,
            capacity=2,
            in_flight=("t-1",),
            pool=m.Pool.STANDBY,
        ),
    ),
    ("task", TASK),
    (
        "checkpoint",
        m.Checkpoint(
            task_id="t-1",
            attempt=2,
            agent_id="a-1",
            epoch=7,
            step=4,
            state={"k": [1, 2]},
            written_at=11.0,
        ),
    ),
    (
        "task_event",
        m.TaskEvent(
            kind=m.EventKind.CLAIMED,
            agent_id="a-1",
            epoch=7,
            at=1.0,
            task_id="t-1",
            attempt=1,
            task=TASK,
        ),
    ),
    (
        "task_event",
        m.TaskEvent(
            kind=m.EventKind.CHECKPOINTED,
            agent_id="a-1",
            epoch=7,
            at=1.0,
            task_id="t-1",
            attempt=1,
            checkpoint=REF,
        ),
    ),
    (
        "task_event",
        m.TaskEvent(
            kind=m.EventKind.AGENT_STARTED,
            agent_id="a-1",
            epoch=7,
            at=1.0,
            capacity=2,
            pool=m.Pool.ACTIVE,
        ),
    ),
    (
        "control",
        m.Control(
            kind=m.ControlKind.FENCE,
            agent_id="a-1",
            epoch=7,
            decision_id="d-1",
            issued_at=3.0,
            reason=m.DispatchReason.HEARTBEAT_TIMEOUT,
            last_heartbeat_age_s=3.1,
            plan=(
                m.PlanEntry(
                    task_id="t-1", attempt=2, target_agent_id="a-2", target_epoch=9, checkpoint=REF
                ),
                m.PlanEntry(task_id="t-2", attempt=3),
            ),
        ),
    ),
    (
        "redispatch",
        m.Redispatch(
            task=TASK,
            attempt=2,
            target_agent_id="a-2",
            target_epoch=9,
            reason=m.DispatchReason.HEARTBEAT_TIMEOUT,
            from_agent_id="a-1",
            from_epoch=7,
            decision_id="d-1",
            dispatched_at=3.1,
            checkpoint=REF,
        ),
    ),
    (
        "failover",
        m.Failover(
            agent_id="a-1",
            epoch=7,
            decision_id="d-1",
            reason=m.DispatchReason.HEARTBEAT_TIMEOUT,
            decided_at=3.0,
            applied_at=3.1,
            moved=(m.MovedTask(task_id="t-1", attempt=2, target_agent_id="a-2", resume_step=4),),
            queued=("t-2",),
        ),
    ),
    (
        "dead_letter",
        m.DeadLetter(
            topic="af.heartbeats",
            partition=0,
            offset=5,
            reason="not JSON",
            at=1.0,
            key="a-1",
            value="{oops",
        ),
    ),
    (
        "fleet_summary",
        m.FleetSummary(
            monitor_id="host-42",
            at=12.5,
            partitions=(0, 3),
            agents=(
                m.FleetAgent(agent_id="a-2", epoch=9, capacity=4, in_flight=1),
                m.FleetAgent(agent_id="s-1", epoch=5, capacity=2, in_flight=0, pool=m.Pool.STANDBY),
            ),
        ),
    ),
    ("fleet_summary", m.FleetSummary(monitor_id="host-43", at=12.6, partitions=(), agents=())),
    (
        "task_event",
        m.TaskEvent(
            kind=m.EventKind.COMPLETED,
            agent_id="a-1",
            epoch=7,
            at=2.0,
            task_id="t-1",
            attempt=1,
            result={"notes": 3, "summary": ["a", None]},
        ),
    ),
    (
        "task_outcome",
        m.TaskOutcome(
            task_id="t-1",
            kind=m.OutcomeKind.COMPLETED,
            attempt=2,
            agent_id="a-2",
            epoch=9,
            finished_at=4.0,
            result={"notes": 3},
        ),
    ),
    (
        "task_outcome",
        m.TaskOutcome(
            task_id="t-2",
            kind=m.OutcomeKind.FAILED,
            attempt=1,
            agent_id="a-1",
            epoch=7,
            finished_at=4.5,
            error="ValueError: no such document",
        ),
    ),
    (
        "redispatch",
        m.Redispatch(
            task=TASK,
            attempt=1,
            target_agent_id="a-2",
            target_epoch=9,
            reason=m.DispatchReason.NEW,
            decision_id="d-2",
            dispatched_at=3.2,
            source=m.SourceRef(partition=1, offset=9),
        ),
    ),
]
