"""Values of the monitor's changelog-backed table: one :class:`AgentRecord` per agent id.

Only what must survive a worker change lives here: the agent's epochs (from ``agent_started`` /
``agent_stopped``), which tasks it holds and their latest checkpoint, and which decisions were
applied. Liveness (heartbeats) is kept in memory by :mod:`streams.liveness` and is never written
to a table: a new owner learns it again within one heartbeat interval.

Records are frozen; every update builds a new one (``dataclasses.replace``) and the faust layer
writes it back, so that the changelog sees every change. The bounded tuples keep a record small
however long an agent lives: only recent history is needed to recognise duplicates.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from agent_failover.models import CheckpointRef, DispatchReason, Pool, SourceRef, Task

#: How many fenced epochs, applied plan entries and finished attempts a record remembers. Later
#: duplicates of anything older are so late (thousands of decisions) that they cannot happen in
#: practice; the bound keeps a long-lived agent's record (and its changelog records) small.
KEEP_FENCED = 64
KEEP_DECIDED = 1024
KEEP_DONE = 1024

STATE_VERSION = 1


class SlotStatus(enum.StrEnum):
    """Where a task held in an agent's record stands."""

    OWNED = "owned"  # claimed by, or re-dispatched to, the slot's epoch
    UNCONFIRMED = (
        "unconfirmed"  # `claiming` seen without `claimed`: the claim may not have happened
    )
    QUEUED = "queued"  # must move: waits for a dispatch decision (or for a healthy agent)


@dataclasses.dataclass(frozen=True, slots=True)
class TaskSlot:
    """One task attempt as the monitor knows it.

    ``checkpoint`` is the resume point a re-dispatch of this attempt would name: the latest
    checkpoint of this attempt, or, before it has checkpointed, the one it was dispatched with.
    """

    task: Task
    attempt: int
    epoch: int
    status: SlotStatus
    checkpoint: CheckpointRef | None = None
    source: SourceRef | None = None
    reason: DispatchReason | None = None  # why it is queued

    @property
    def task_id(self) -> str:
        """The task's id."""
        return self.task.task_id


@dataclasses.dataclass(frozen=True, slots=True)
class FencedEpoch:
    """An applied fence: the epoch, the decision that fenced it, and when it was issued."""

    epoch: int
    decision_id: str
    issued_at: float


@dataclasses.dataclass(frozen=True, slots=True)
class AgentRecord:
    """Everything the monitor must remember about one agent id.

    ``epoch`` is the newest epoch announced by ``agent_started`` (or seen in a task event);
    ``superseded`` are older epochs replaced while still open (neither stopped nor fenced): they
    are failed at once with reason ``restarted``.
    """

    agent_id: str
    partition: int
    epoch: int | None = None
    pool: Pool = Pool.ACTIVE
    capacity: int = 1
    stopped: tuple[int, ...] = ()
    superseded: tuple[int, ...] = ()
    fenced: tuple[FencedEpoch, ...] = ()
    tasks: Mapping[str, TaskSlot] = dataclasses.field(default_factory=dict)
    decided: tuple[tuple[str, int], ...] = ()  # applied plan entries: (task_id, attempt)
    done: tuple[tuple[str, int], ...] = ()  # finished attempts: (task_id, attempt)

    def is_fenced(self, epoch: int) -> bool:
        """Whether ``epoch`` was fenced by an applied decision."""
        if not self.fenced:  # nearly every record: no generator on the detection hot path
            return False
        return any(f.epoch == epoch for f in self.fenced)

    def fence_of(self, epoch: int) -> FencedEpoch | None:
        """The applied fence of ``epoch``, if any."""
        return next((f for f in self.fenced if f.epoch == epoch), None)

    def is_decided(self, task_id: str, attempt: int) -> bool:
        """Whether a placed plan entry for ``(task_id, attempt)`` was already applied here."""
        return (task_id, attempt) in self.decided

    def is_done(self, task_id: str, attempt: int) -> bool:
        """Whether ``(task_id, attempt)`` (or a later attempt) finished on this agent."""
        return any(t == task_id and a >= attempt for t, a in self.done)

    def slots_of(self, epoch: int) -> list[TaskSlot]:
        """Task slots held by ``epoch``, in task id order (deterministic plans)."""
        return sorted((s for s in self.tasks.values() if s.epoch == epoch), key=lambda s: s.task_id)


def bounded(items: Iterable[Any], keep: int) -> tuple[Any, ...]:
    """The last ``keep`` items as a tuple."""
    out = tuple(items)
    return out[-keep:] if len(out) > keep else out


# --- table codec -----------------------------------------------------------------------------


def _ref(raw: Any) -> CheckpointRef | None:
    return None if raw is None else CheckpointRef.from_dict(raw)


def _slot_to_dict(slot: TaskSlot) -> dict[str, Any]:
    return {
        "task": slot.task.to_dict(),
        "attempt": slot.attempt,
        "epoch": slot.epoch,
        "status": slot.status.value,
        "checkpoint": None if slot.checkpoint is None else slot.checkpoint.to_dict(),
        "source": None if slot.source is None else slot.source.to_dict(),
        "reason": None if slot.reason is None else slot.reason.value,
    }


def _slot_from_dict(raw: Mapping[str, Any]) -> TaskSlot:
    return TaskSlot(
        task=Task.from_dict(raw["task"]),
        attempt=raw["attempt"],
        epoch=raw["epoch"],
        status=SlotStatus(raw["status"]),
        checkpoint=_ref(raw.get("checkpoint")),
        source=None if raw.get("source") is None else SourceRef.from_dict(raw["source"]),
        reason=None if raw.get("reason") is None else DispatchReason(raw["reason"]),
    )


def encode_record(record: AgentRecord) -> bytes:
    """Serialise a record for the table's changelog."""
    return orjson.dumps(
        {
            "v": STATE_VERSION,
            "agent_id": record.agent_id,
            "partition": record.partition,
            "epoch": record.epoch,
            "pool": record.pool.value,
            "capacity": record.capacity,
            "stopped": list(record.stopped),
            "superseded": list(record.superseded),
            "fenced": [[f.epoch, f.decision_id, f.issued_at] for f in record.fenced],
            "tasks": [_slot_to_dict(s) for s in record.tasks.values()],
            "decided": [list(d) for d in record.decided],
            "done": [list(d) for d in record.done],
        }
    )


def decode_record(raw: bytes) -> AgentRecord:
    """Inverse of :func:`encode_record`."""
    data = orjson.loads(raw)
    slots = [_slot_from_dict(s) for s in data["tasks"]]
    return AgentRecord(
        agent_id=data["agent_id"],
        partition=data["partition"],
        epoch=data["epoch"],
        pool=Pool(data["pool"]),
        capacity=data["capacity"],
        stopped=tuple(data["stopped"]),
        superseded=tuple(data["superseded"]),
        fenced=tuple(FencedEpoch(e, d, t) for e, d, t in data["fenced"]),
        tasks={s.task_id: s for s in slots},
        decided=tuple((t, a) for t, a in data["decided"]),
        done=tuple((t, a) for t, a in data["done"]),
    )


@dataclasses.dataclass(slots=True)
class LiveEntry:
    """The newest heartbeat of one agent id, as the monitor saw it (in memory only).

    ``last_seen`` is the MONITOR's ``time.monotonic()`` when the heartbeat was consumed: agents'
    clocks are never trusted for liveness.
    """

    agent_id: str
    epoch: int
    seq: int
    last_seen: float
    capacity: int
    in_flight: tuple[str, ...] = ()
    pool: Pool = Pool.ACTIVE
    draining: bool = False
    interval_s: float = 0.0  # the agent's own heartbeat interval (0: unknown)
