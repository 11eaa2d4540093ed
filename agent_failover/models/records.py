"""The wire records, one frozen dataclass each: what agents and submitters write (heartbeats,
tasks, checkpoints, task events), and the monitor's fleet summary and task outcomes. The
monitor's decisions are :mod:`agent_failover.models.decisions`.

A record's first docstring paragraph and its field annotations are its schema: the generator
(``python -m agent_failover.models.schemagen``) writes them to ``schemas/*.schema.json``, and
:class:`~agent_failover.models.base.Record` validates against the same annotations on decode.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, ClassVar

import orjson
from msgspec import Meta

from agent_failover.errors import CodecError, Refusal
from agent_failover.models.base import Needs, Record, Rule, too_deep
from agent_failover.models.vocabulary import (
    JSON,
    MAX_JSON_DEPTH,
    MAX_RESULT_BYTES,
    SCHEMA_VERSION,
    TASK_EVENT_KINDS,
    AgentId,
    Attempt,
    Epoch,
    EventKind,
    NonNegative,
    OutcomeKind,
    Pool,
    Step,
    TaskId,
    Version,
)


@dataclasses.dataclass(frozen=True, slots=True)
class Heartbeat(Record):
    """Liveness and load of one agent epoch. Topic `heartbeats`, key: agent_id."""

    RECORD_TYPE: ClassVar[str] = "heartbeat"
    agent_id: AgentId
    epoch: Epoch
    seq: Annotated[
        int, Meta(ge=0, description="Heartbeat sequence number within the epoch, from 0.")
    ]
    # The monitor never trusts an agent's clock: liveness is measured on its own.
    sent_at: Annotated[float, Meta(description="Agent clock, Unix seconds; informational only.")]
    interval_s: Annotated[
        float, Meta(gt=0, description="The agent's heartbeat interval in seconds.")
    ]
    capacity: NonNegative
    in_flight: Annotated[
        tuple[str, ...], Meta(description="Ids of the tasks the agent is running.")
    ] = ()
    pool: Pool = Pool.ACTIVE
    draining: bool = False
    heartbeat_timeout_s: (
        Annotated[
            float,
            Meta(
                gt=0,
                description=(
                    "The heartbeat timeout the agent's lease assumes; the monitor refuses an "
                    "agent assuming more than its own (absent: the agent keeps no lease)."
                ),
            ),
        ]
        | None
    ) = None
    schema_version: Version = SCHEMA_VERSION


@dataclasses.dataclass(frozen=True, slots=True)
class Task(Record):
    """A unit of work. Topic `tasks`, key: task_id; also embedded in events and re-dispatch
    records.
    """

    RECORD_TYPE: ClassVar[str] = "task"
    task_id: TaskId
    task_type: Annotated[str, Meta(min_length=1)]
    payload: Annotated[JSON, Meta(description="Application input of the task; any JSON value.")] = (
        None
    )
    submitted_at: float | None = None
    schema_version: Version = SCHEMA_VERSION


@dataclasses.dataclass(frozen=True, slots=True)
class Checkpoint(Record):
    """Progress of one task attempt. Topic `checkpoints` (compacted), key: task_id."""

    RECORD_TYPE: ClassVar[str] = "checkpoint"
    task_id: TaskId
    attempt: Attempt
    agent_id: AgentId
    epoch: Epoch
    step: Step
    # Required even when null: null is a valid state, and absent would hide a writer's bug.
    state: Annotated[
        JSON, Meta(description="Application state needed to resume after `step`; any JSON value.")
    ]
    written_at: float
    schema_version: Version = SCHEMA_VERSION


@dataclasses.dataclass(frozen=True, slots=True)
class CheckpointRef(Record):
    """Where a checkpoint lies (partition and offset in the checkpoints topic) and which one it
    is: its task, attempt, epoch and step. A reader uses the record at that offset only if it
    is that checkpoint.
    """

    RECORD_TYPE: ClassVar[str] = "checkpoint_ref"
    partition: NonNegative
    offset: NonNegative
    step: Step
    task_id: TaskId
    attempt: Attempt
    epoch: Epoch

    def names(self, checkpoint: Checkpoint) -> bool:
        """Whether ``checkpoint`` is the one this reference names."""
        return (self.task_id, self.attempt, self.epoch, self.step) == (
            checkpoint.task_id,
            checkpoint.attempt,
            checkpoint.epoch,
            checkpoint.step,
        )


def _own(ref: CheckpointRef, task_id: str, attempt: int, epoch: int) -> str | None:
    """Why ``ref`` is not a checkpoint of attempt ``attempt`` of ``task_id`` by ``epoch``."""
    if (ref.task_id, ref.attempt, ref.epoch) == (task_id, attempt, epoch):
        return None
    return (
        f"its checkpoint is task {ref.task_id!r} attempt {ref.attempt} epoch {ref.epoch}, "
        f"not this attempt's (task {task_id!r} attempt {attempt} epoch {epoch})"
    )


def not_earlier(ref: CheckpointRef, task_id: str, attempt: int) -> str | None:
    """Why ``ref`` is not a checkpoint of ``task_id`` from an attempt before ``attempt``."""
    if ref.task_id == task_id and ref.attempt < attempt:
        return None
    return (
        f"its checkpoint is task {ref.task_id!r} attempt {ref.attempt}, not an earlier attempt "
        f"of task {task_id!r} than {attempt}"
    )


CheckpointLocation = Annotated[
    CheckpointRef | None,
    Meta(description="Location of the checkpoint to resume from, or of the latest one written."),
]


@dataclasses.dataclass(frozen=True, slots=True)
class SourceRef(Record):
    """Where a new task lies in the task topic: the partition and offset of its record."""

    RECORD_TYPE: ClassVar[str] = "source_ref"
    partition: NonNegative
    offset: NonNegative


_RESULT = (
    f"What the task's handler returned (`completed` only; absent: nothing, or null): any JSON "
    f"value of at most {MAX_RESULT_BYTES} bytes as compact JSON."
)


def plain_result(value: Any) -> JSON:
    """``value`` as the plain JSON value a ``completed`` event carries (what a reader decodes).

    Raises :class:`CodecError` if it is not JSON (orjson also writes dataclasses, enums, UUIDs
    and datetimes: they arrive as objects and strings), nests deeper than
    :data:`MAX_JSON_DEPTH`, or is more than :data:`MAX_RESULT_BYTES` bytes of compact JSON.
    """
    try:
        raw = orjson.dumps(value)
    except TypeError as exc:  # orjson's JSONEncodeError: not JSON, or nested too deep
        raise CodecError(f"the result is not JSON: {exc}", record_type="task_event") from None
    if len(raw) > MAX_RESULT_BYTES:
        raise CodecError(
            f"the result is {len(raw):,} bytes of JSON, over the {MAX_RESULT_BYTES:,}-byte limit: "
            "store it elsewhere and return a reference to it",
            record_type="task_event",
            refusal=Refusal.TOO_LARGE,
        )
    plain = orjson.loads(raw)
    if type(plain) in (dict, list) and too_deep(plain, MAX_JSON_DEPTH):
        raise CodecError(
            f"the result nests deeper than {MAX_JSON_DEPTH} levels", record_type="task_event"
        )
    return plain


@dataclasses.dataclass(frozen=True, slots=True)
class TaskEvent(Record):
    """Agent lifecycle and task progress. Topic `task-events`, key: agent_id.

    `agent_started` / `agent_stopped` carry no task; every other kind carries `task_id` and
    `attempt`. `claimed` carries the task itself; `checkpointed` and `released` carry a
    checkpoint: for `checkpointed` the attempt's own (same task, attempt and epoch), for
    `released` its own or the one the attempt resumed from (an earlier attempt of the task).
    `completed` may carry the handler's `result`.
    """

    RECORD_TYPE: ClassVar[str] = "task_event"
    RULES: ClassVar[tuple[Rule, ...]] = (
        Needs(("task_id", "attempt"), when="kind", values=tuple(sorted(TASK_EVENT_KINDS))),
        Needs(("task",), when="kind", values=(EventKind.CLAIMED,)),
        Needs(("checkpoint",), when="kind", values=(EventKind.CHECKPOINTED,)),
    )
    kind: EventKind
    agent_id: AgentId
    epoch: Epoch
    at: float
    task_id: TaskId | None = None
    attempt: Attempt | None = None
    task: Task | None = None
    checkpoint: CheckpointLocation = None
    capacity: NonNegative | None = None
    pool: Pool | None = None
    error: str | None = None
    result: Annotated[JSON, Meta(description=_RESULT)] = None
    schema_version: Version = SCHEMA_VERSION

    def _consistency(self) -> str | None:
        ref, task_id, attempt = self.checkpoint, self.task_id, self.attempt
        if ref is None or task_id is None or attempt is None:
            return None
        if self.kind is EventKind.RELEASED and not_earlier(ref, task_id, attempt) is None:
            return None  # the point this attempt resumed from: it wrote no checkpoint since
        return _own(ref, task_id, attempt, self.epoch)


@dataclasses.dataclass(frozen=True, slots=True)
class FleetAgent(Record):
    """One healthy agent epoch in a fleet summary: a target other workers may choose."""

    RECORD_TYPE: ClassVar[str] = "fleet_agent"
    agent_id: AgentId
    epoch: Epoch
    capacity: NonNegative
    in_flight: Annotated[
        int,
        Meta(
            ge=0,
            description="Tasks the agent holds or was just sent, as the owning worker counts them.",
        ),
    ]
    pool: Pool = Pool.ACTIVE
    draining: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class FleetSummary(Record):
    """The healthy agents one monitor worker owns, so every worker can choose failover targets in
    the whole fleet. Topic `fleet`, key: monitor_id.

    Each worker reads only its own heartbeat partitions; these summaries let every worker choose
    failover targets among the whole fleet. A reader trusts a summary only for the partitions it
    lists, and only while it is the newest summary received that claims them.
    """

    RECORD_TYPE: ClassVar[str] = "fleet_summary"
    monitor_id: Annotated[
        str,
        Meta(min_length=1, description="The publishing monitor worker (host and process id)."),
    ]
    at: Annotated[
        float,
        Meta(
            description=(
                "Publisher's clock, Unix seconds; informational only: readers age summaries by "
                "their own time of receipt."
            )
        ),
    ]
    partitions: Annotated[
        tuple[NonNegative, ...],
        Meta(
            description=(
                "The agent partitions the publisher owned when it wrote the summary; it speaks "
                "only for these."
            )
        ),
    ]
    agents: Annotated[
        tuple[FleetAgent, ...],
        Meta(description="The healthy agent epochs of those partitions that can take work."),
    ]
    schema_version: Version = SCHEMA_VERSION


@dataclasses.dataclass(frozen=True, slots=True)
class TaskOutcome(Record):
    """How a task ended: the completion or failure of the attempt the monitor accepted, never one
    of a fenced epoch or a superseded attempt. Topic `outcomes`, key: task_id.

    The first outcome per `task_id` in its partition is the task's outcome: a monitor restart
    can publish it again, and readers ignore every later one.
    """

    RECORD_TYPE: ClassVar[str] = "task_outcome"
    RULES: ClassVar[tuple[Rule, ...]] = (
        Needs(("error",), when="kind", values=(OutcomeKind.FAILED,)),
    )
    task_id: TaskId
    kind: OutcomeKind
    attempt: Attempt
    agent_id: Annotated[str, Meta(min_length=1, description="The agent that ran the attempt.")]
    epoch: Epoch
    finished_at: Annotated[
        float,
        Meta(description="When the agent reported it (agent clock, Unix seconds); informational."),
    ]
    result: Annotated[
        JSON, Meta(description="What the handler returned (`completed` only), as in the event.")
    ] = None
    error: Annotated[str | None, Meta(description="Why the task failed (`failed` only).")] = None
    schema_version: Version = SCHEMA_VERSION

    @classmethod
    def of_event(cls, ev: TaskEvent) -> TaskOutcome:
        """The outcome an accepted ``completed`` or ``failed`` event stands for.

        A function of the event alone, so that applying an event twice publishes the same
        bytes. A ``completed`` whose result breaks the limit (from an agent not written with the
        SDK, which refuses such a result) is a failure, as the SDK reports it.
        """
        if ev.kind not in (EventKind.COMPLETED, EventKind.FAILED):
            raise cls._error(f"a {ev.kind.value} event ends no task")
        assert ev.task_id is not None and ev.attempt is not None  # the event's own rules
        kind, result, error = OutcomeKind.FAILED, None, ev.error or "failed (no reason given)"
        if ev.kind is EventKind.COMPLETED:
            try:
                kind, result = OutcomeKind.COMPLETED, plain_result(ev.result)
            except CodecError as exc:
                error = f"{type(exc).__name__}: {exc}"
        return cls(
            task_id=ev.task_id,
            kind=kind,
            attempt=ev.attempt,
            agent_id=ev.agent_id,
            epoch=ev.epoch,
            finished_at=ev.at,
            result=result,
            error=error if kind is OutcomeKind.FAILED else None,
        )
