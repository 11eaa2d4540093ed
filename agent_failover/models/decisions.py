"""The monitor's decisions on the wire: a control record about one agent (fence, dispatch,
drain, promote) with its plan, a task dispatched to an agent, and the failover audit record.

Like every record here, a class's first docstring paragraph and its annotations are its schema
(``python -m agent_failover.models.schemagen``).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, ClassVar

from msgspec import Meta

from agent_failover.models.base import Needs, Pins, Record, Rule, together
from agent_failover.models.records import (
    CheckpointLocation,
    SourceRef,
    Task,
    not_earlier,
)
from agent_failover.models.vocabulary import (
    SCHEMA_VERSION,
    AgentId,
    Attempt,
    ControlKind,
    DecisionId,
    DispatchReason,
    Epoch,
    HeartbeatAge,
    NewAttempt,
    TaskId,
    Version,
)

TargetAgentId = Annotated[
    str | None,
    Meta(description="Agent chosen to run the task; absent when no healthy agent was available."),
]


@dataclasses.dataclass(frozen=True, slots=True)
class PlanEntry(Record):
    """One task's move in a control decision: new attempt, target (or none yet), resume point
    (a checkpoint of an earlier attempt of the task)."""

    RECORD_TYPE: ClassVar[str] = "plan_entry"
    RULES: ClassVar[tuple[Rule, ...]] = together("target_agent_id", "target_epoch")
    task_id: TaskId
    attempt: NewAttempt
    target_agent_id: TargetAgentId = None
    target_epoch: Epoch | None = None
    checkpoint: CheckpointLocation = None

    def _consistency(self) -> str | None:
        return not_earlier(self.checkpoint, self.task_id, self.attempt) if self.checkpoint else None


@dataclasses.dataclass(frozen=True, slots=True)
class Control(Record):
    """A monitor decision about one agent (fence, dispatch, drain, promote). Topic `control`,
    key: agent_id.

    The first `fence` for an epoch, and the first plan entry for a `(task_id, attempt)`, in the
    agent's control partition are the ones that count: later duplicates are ignored by everyone.
    """

    RECORD_TYPE: ClassVar[str] = "control"
    kind: ControlKind
    agent_id: AgentId
    epoch: Epoch
    decision_id: DecisionId
    issued_at: float
    reason: DispatchReason | None = None
    plan: Annotated[
        tuple[PlanEntry, ...],
        Meta(
            description=(
                "Tasks to move: the first entry per (task_id, attempt) in the agent's control "
                "partition counts."
            )
        ),
    ] = ()
    last_heartbeat_age_s: HeartbeatAge | None = None
    monitor_id: str | None = None
    detail: (
        Annotated[
            str,
            Meta(
                max_length=1024,
                description="Why, in words an operator can act on (a `misconfigured` fence).",
            ),
        ]
        | None
    ) = None
    schema_version: Version = SCHEMA_VERSION


_MOVED = tuple(r.value for r in DispatchReason if r is not DispatchReason.NEW)


@dataclasses.dataclass(frozen=True, slots=True)
class Redispatch(Record):
    """A task dispatched to a chosen agent: new work (attempt 1, reason `new`) or a task moved
    away from another agent. Topic `tasks.priority`, key: target_agent_id; the monitor's intake
    decisions on `tasks.assigned` (key: task_id) are the same record.

    Identical copies of one `(task_id, attempt)` can appear after a monitor restart; receivers
    act on the first and ignore the rest. The checkpoint, if any, is of an earlier attempt of the
    task.
    """

    RECORD_TYPE: ClassVar[str] = "redispatch"
    RULES: ClassVar[tuple[Rule, ...]] = (
        Pins("attempt", 1, when="reason", values=(DispatchReason.NEW,)),
        Pins("reason", DispatchReason.NEW, when="attempt", values=(1,)),
        Needs(("source",), when="reason", values=(DispatchReason.NEW,)),
        Needs(("from_agent_id", "from_epoch"), when="reason", values=_MOVED),
    )
    task: Task
    attempt: Attempt
    target_agent_id: Annotated[str, Meta(description="Agent chosen to run the task.")]
    target_epoch: Epoch
    reason: DispatchReason
    decision_id: DecisionId
    dispatched_at: float
    from_agent_id: Annotated[
        str | None, Meta(description="The agent the task moved away from (not for new work).")
    ] = None
    from_epoch: Epoch | None = None
    source: Annotated[
        SourceRef | None,
        Meta(description="Where new work lies in the task topic (reason `new` only)."),
    ] = None
    checkpoint: CheckpointLocation = None
    # Monitor to monitor: the worker that sees the task resume measures the end-to-end RTO.
    last_heartbeat_age_s: Annotated[
        float | None,
        Meta(
            description=(
                "When the task leaves a failed epoch: seconds between that epoch's last heartbeat "
                "(monitor clock) and `dispatched_at`; absent for tasks of a live agent."
            )
        ),
    ] = None
    schema_version: Version = SCHEMA_VERSION

    @property
    def task_id(self) -> str:
        """The moved task's id."""
        return self.task.task_id

    def _consistency(self) -> str | None:
        return not_earlier(self.checkpoint, self.task_id, self.attempt) if self.checkpoint else None


@dataclasses.dataclass(frozen=True, slots=True)
class MovedTask(Record):
    """One line of a failover audit record."""

    RECORD_TYPE: ClassVar[str] = "moved_task"
    task_id: TaskId
    attempt: Attempt
    target_agent_id: TargetAgentId = None
    resume_step: Annotated[
        int | None,
        Meta(description="The checkpointed step it resumes after; absent: from the start."),
    ] = None


@dataclasses.dataclass(frozen=True, slots=True)
class Failover(Record):
    """Audit record of an applied failover or dispatch decision. Topic `failovers`, key:
    agent_id.

    A monitor restart mid-apply can write one again: readers de-duplicate by `decision_id`.
    """

    RECORD_TYPE: ClassVar[str] = "failover"
    agent_id: AgentId
    epoch: Epoch
    decision_id: DecisionId
    reason: DispatchReason
    decided_at: float
    applied_at: float
    moved: tuple[MovedTask, ...] = ()
    queued: tuple[str, ...] = ()
    last_heartbeat_age_s: HeartbeatAge | None = None
    monitor_id: str | None = None
    schema_version: Version = SCHEMA_VERSION
