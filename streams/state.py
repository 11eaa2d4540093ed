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

import msgspec
import orjson

from agent_failover.errors import CodecError
from agent_failover.models import CheckpointRef, DispatchReason, Pool, Task

#: How many fenced epochs, applied plan entries and finished attempts a record remembers. Later
#: duplicates of anything older are so late (thousands of decisions) that they cannot happen in
#: practice; the bound keeps a long-lived agent's record (and its changelog records) small.
KEEP_FENCED = 64
KEEP_DECIDED = 1024
KEEP_DONE = 1024

#: Version of the table's record layout (``"v"``); checked on read, see :func:`decode_record`.
#: 3: checkpoint references name their task, attempt and epoch. Records of every version may
#: hold claims of the agents' former consumer group (``unconfirmed``): they read as held.
STATE_VERSION = 3
#: The ``record_type`` of a :class:`CodecError` about a table value.
TABLE_RECORD = "agent_record"


class SlotStatus(enum.StrEnum):
    """Where a task held in an agent's record stands."""

    OWNED = "owned"  # dispatched to (or claimed by) the slot's epoch
    QUEUED = "queued"  # must move: waits for a dispatch decision (or for a healthy agent)


@dataclasses.dataclass(frozen=True, slots=True)
class TaskSlot:
    """One task attempt as the monitor knows it.

    ``checkpoint`` is the resume point a re-dispatch of this attempt would name: the latest
    checkpoint of this attempt, or, before it has checkpointed, the one it was dispatched with.
    ``progress_at`` is when a monitor received that checkpoint, or this attempt's claim or
    re-dispatch before its first one (wall clock, Unix seconds; absent in records written before
    it was kept): the checkpoint age and progress-lost metrics read it.
    """

    task: Task
    attempt: int
    epoch: int
    status: SlotStatus
    checkpoint: CheckpointRef | None = None
    reason: DispatchReason | None = None  # why it is queued
    progress_at: float | None = None

    @property
    def task_id(self) -> str:
        """The task's id."""
        return self.task.task_id


@dataclasses.dataclass(frozen=True, slots=True)
class FencedEpoch:
    """An applied fence: the epoch, the decision that fenced it, when it was issued, and how long
    the epoch had been silent then (when known)."""

    epoch: int
    decision_id: str
    issued_at: float
    last_heartbeat_age_s: float | None = None


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
# The dataclasses above are the one definition of a table value: orjson writes them as they are
# and msgspec validates them back, with the wire records' own rules for the tasks they hold.


def encode_record(record: AgentRecord) -> bytes:
    """Serialise a record for the table's changelog: ``{"v": STATE_VERSION, "agent": ...}``."""
    return orjson.dumps({"v": STATE_VERSION, "agent": record})


def _from_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 kept fenced epochs as triples and task slots as a list; reshape it to 2."""
    return {
        **data,
        "fenced": [{"epoch": e, "decision_id": d, "issued_at": t} for e, d, t in data["fenced"]],
        "tasks": {s["task"]["task_id"]: s for s in data["tasks"]},
    }


def _from_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Version 2 checkpoint references had no task, attempt and epoch: give them the slot's.

    Right for the checkpoints the slot's attempt wrote; for a resume point of an earlier attempt
    (an attempt that has not checkpointed yet) it is not, and the agent resuming it refuses the
    record and starts the task from step 0: nothing is lost, some steps are redone.
    """
    if type(data.get("tasks")) is not dict:
        return data  # malformed: the conversion below names what is wrong
    tasks = {}
    for task_id, slot in data["tasks"].items():
        ref = slot.get("checkpoint") if type(slot) is dict else None
        if type(ref) is dict:
            named = {"task_id": task_id, "attempt": slot["attempt"], "epoch": slot["epoch"]}
            slot = {**slot, "checkpoint": {**named, **ref}}
        tasks[task_id] = slot
    return {**data, "tasks": tasks}


def _claims_taken(data: dict[str, Any]) -> dict[str, Any]:
    """Records written while agents claimed tasks themselves may hold an ``unconfirmed`` claim
    (its ``source`` is ignored). Nobody reads the agents' old group any more, so the task is held
    as ``owned``: moved if its agent dies, never lost."""
    tasks = data.get("tasks")
    if type(tasks) is not dict:
        return data
    old = [k for k, s in tasks.items() if type(s) is dict and s.get("status") == "unconfirmed"]
    if not old:
        return data
    return {**data, "tasks": {**tasks, **{k: {**tasks[k], "status": "owned"} for k in old}}}


def decode_record(raw: bytes) -> AgentRecord:
    """Inverse of :func:`encode_record`; also reads version 1 and 2 records.

    Raises :class:`CodecError` for anything else, naming the version when it is one this monitor
    does not know (a newer monitor wrote it).
    """
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _error(f"not JSON ({exc})") from exc
    version = data.get("v") if type(data) is dict else None
    if type(version) is not int or version not in (1, 2, STATE_VERSION):
        raise _error(
            f"version {version!r} is not supported: this monitor reads versions 1 to "
            f"{STATE_VERSION} (a newer monitor wrote it, or it is not a table record)"
        )
    try:
        fields = _from_v1(data) if version == 1 else data["agent"]
        if version < 3:
            fields = _from_v2(fields)
        # Any version written before the monitor placed new work may hold unconfirmed claims.
        return msgspec.convert(_claims_taken(fields), type=AgentRecord, strict=True)
    except msgspec.ValidationError as exc:
        raise _error(str(exc)) from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _error(f"malformed version {version} record ({exc!r})") from None


def _error(reason: str) -> CodecError:
    return CodecError(f"invalid agents table record: {reason}", record_type=TABLE_RECORD)


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
    sent_at: float = 0.0  # the AGENT's clock when it sent the heartbeat: informational only
    timeout_s: float | None = None  # the heartbeat timeout the agent's lease assumes
