"""Wire records: frozen dataclasses that mirror ``schemas/*.schema.json``, encoded with orjson.

Every record carries ``schema_version``. Decoding is strict: a missing field, a wrong type, an
unknown enum value or a newer major schema version raises :class:`~agent_failover.errors.CodecError`
(the monitor sends such records to the dead-letter topic). Unknown extra fields are ignored so that
newer minor versions of a producer stay readable. ``tests/unit/test_schemas.py`` keeps these classes
and the schema files in sync.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any, ClassVar, Self, TypeVar

import orjson

from agent_failover.errors import CodecError

SCHEMA_VERSION = 1

JSON = Any  # any JSON-serialisable value (task payloads, checkpoint state)


class Pool(enum.StrEnum):
    """Which pool an agent serves in: active agents take normal tasks, standbys await failovers."""

    ACTIVE = "active"
    STANDBY = "standby"


class EventKind(enum.StrEnum):
    """Kinds of record on the task-events topic (keyed by agent id)."""

    AGENT_STARTED = "agent_started"
    AGENT_STOPPED = "agent_stopped"
    CLAIMING = "claiming"
    CLAIMED = "claimed"
    CHECKPOINTED = "checkpointed"
    COMPLETED = "completed"
    FAILED = "failed"
    RELEASED = "released"


TASK_EVENT_KINDS = frozenset(
    {
        EventKind.CLAIMING,
        EventKind.CLAIMED,
        EventKind.CHECKPOINTED,
        EventKind.COMPLETED,
        EventKind.FAILED,
        EventKind.RELEASED,
    }
)


class ControlKind(enum.StrEnum):
    """Kinds of record on the control topic (keyed by the agent they concern)."""

    FENCE = "fence"  # the epoch is dead: stop; its tasks move as the plan says
    DISPATCH = "dispatch"  # move some tasks of a live epoch (released, late claims, queued)
    DRAIN = "drain"  # stop taking new tasks, finish the current ones
    PROMOTE = "promote"  # a standby becomes active


class DispatchReason(enum.StrEnum):
    """Why a task was re-dispatched."""

    HEARTBEAT_TIMEOUT = "heartbeat_timeout"
    RESTARTED = "restarted"  # the same agent id came back with a new epoch
    RELEASED = "released"  # the agent let the task go (graceful shutdown)
    STOPPED = "stopped"  # the agent said it stopped while still holding the task
    LATE_CLAIM = "late_claim"  # a claim or assignment reached a fenced epoch
    QUEUED = "queued"  # waited for a healthy agent


_T = TypeVar("_T")
_R = TypeVar("_R", bound="Record")


def _fail(record_type: str, message: str) -> CodecError:
    return CodecError(f"invalid {record_type} record: {message}", record_type=record_type)


def _get(
    data: Mapping[str, Any], rt: str, key: str, typ: type[_T], *, optional: bool = False
) -> Any:
    """Read ``key`` of ``typ``; bool is never accepted as int (JSON true is not 1)."""
    if key not in data or data[key] is None:
        if optional:
            return None
        raise _fail(rt, f"missing field {key!r}")
    value = data[key]
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise _fail(rt, f"field {key!r} must be {typ.__name__}, got {type(value).__name__}")
    return value


def _enum(
    data: Mapping[str, Any], rt: str, key: str, typ: type[enum.StrEnum], *, optional: bool = False
) -> Any:
    raw = _get(data, rt, key, str, optional=optional)
    if raw is None:
        return None
    try:
        return typ(raw)
    except ValueError:
        allowed = ", ".join(m.value for m in typ)
        raise _fail(rt, f"field {key!r} is {raw!r}, expected one of: {allowed}") from None


def _nonneg(rt: str, key: str, value: int | None) -> None:
    if value is not None and value < 0:
        raise _fail(rt, f"field {key!r} must be >= 0, got {value}")


def _nonempty(rt: str, key: str, value: str | None) -> None:
    if value is not None and not value:
        raise _fail(rt, f"field {key!r} must not be empty")


class Record:
    """Base of every wire record: ``encode()`` to bytes, ``decode(bytes)`` back."""

    RECORD_TYPE: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready dict (enums as strings, ``None`` fields dropped)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            # Absent optionals are dropped; a required field (Checkpoint.state) stays, even null.
            if value is None and f.default is not dataclasses.MISSING:
                continue
            out[f.name] = _plain(value)
        return out

    def encode(self) -> bytes:
        """Serialise to compact JSON bytes."""
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build and validate from a decoded JSON object."""
        raise NotImplementedError

    @classmethod
    def decode(cls, raw: bytes | bytearray | memoryview | str | None) -> Self:
        """Parse and validate ``raw``; raises :class:`CodecError` with the reason on bad input."""
        if raw is None:
            raise _fail(cls.RECORD_TYPE, "empty value (tombstone)")
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise _fail(cls.RECORD_TYPE, f"not JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise _fail(cls.RECORD_TYPE, f"expected a JSON object, got {type(data).__name__}")
        version = _get(data, cls.RECORD_TYPE, "schema_version", int)
        if version < 1 or version > SCHEMA_VERSION:
            raise _fail(
                cls.RECORD_TYPE,
                f"schema_version {version} is not supported "
                f"(this library reads 1..{SCHEMA_VERSION})",
            )
        return cls.from_dict(data)


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _list_of(data: Mapping[str, Any], rt: str, key: str, cls: type[_R]) -> tuple[_R, ...]:
    items = _get(data, rt, key, list, optional=True) or []
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise _fail(rt, f"{key}[{i}] must be an object")
        out.append(cls.from_dict(item))
    return tuple(out)


def _nested(
    data: Mapping[str, Any], rt: str, key: str, cls: type[_R], *, optional: bool
) -> _R | None:
    raw = _get(data, rt, key, dict, optional=optional)
    return None if raw is None else cls.from_dict(raw)


@dataclasses.dataclass(frozen=True, slots=True)
class Heartbeat(Record):
    """Liveness and load of one agent epoch; topic ``heartbeats``, key ``agent_id``."""

    RECORD_TYPE: ClassVar[str] = "heartbeat"
    agent_id: str
    epoch: int
    seq: int
    sent_at: float  # agent clock, informational only: the monitor never trusts it
    interval_s: float
    capacity: int
    in_flight: tuple[str, ...] = ()
    pool: Pool = Pool.ACTIVE
    draining: bool = False
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        rt = cls.RECORD_TYPE
        in_flight = _get(data, rt, "in_flight", list, optional=True) or []
        if not all(isinstance(t, str) for t in in_flight):
            raise _fail(rt, "field 'in_flight' must be a list of task ids")
        rec = cls(
            agent_id=_get(data, rt, "agent_id", str),
            epoch=_get(data, rt, "epoch", int),
            seq=_get(data, rt, "seq", int),
            sent_at=_get(data, rt, "sent_at", float),
            interval_s=_get(data, rt, "interval_s", float),
            capacity=_get(data, rt, "capacity", int),
            in_flight=tuple(in_flight),
            pool=_enum(data, rt, "pool", Pool, optional=True) or Pool.ACTIVE,
            draining=bool(_get(data, rt, "draining", bool, optional=True)),
            schema_version=data["schema_version"],
        )
        _nonempty(rt, "agent_id", rec.agent_id)
        _nonneg(rt, "seq", rec.seq)
        _nonneg(rt, "capacity", rec.capacity)
        if rec.interval_s <= 0:
            raise _fail(rt, "field 'interval_s' must be > 0")
        return rec


@dataclasses.dataclass(frozen=True, slots=True)
class Task(Record):
    """A unit of work; topic ``tasks`` (and embedded in re-dispatch records), key ``task_id``."""

    RECORD_TYPE: ClassVar[str] = "task"
    task_id: str
    task_type: str
    payload: JSON = None
    submitted_at: float | None = None
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        rt = cls.RECORD_TYPE
        rec = cls(
            task_id=_get(data, rt, "task_id", str),
            task_type=_get(data, rt, "task_type", str),
            payload=data.get("payload"),
            submitted_at=_get(data, rt, "submitted_at", float, optional=True),
            schema_version=data.get("schema_version", SCHEMA_VERSION),
        )
        _nonempty(rt, "task_id", rec.task_id)
        _nonempty(rt, "task_type", rec.task_type)
        return rec


@dataclasses.dataclass(frozen=True, slots=True)
class Checkpoint(Record):
    """Progress of one task attempt; topic ``checkpoints`` (compacted), key ``task_id``."""

    RECORD_TYPE: ClassVar[str] = "checkpoint"
    task_id: str
    attempt: int
    agent_id: str
    epoch: int
    step: int
    state: JSON
    written_at: float
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        rt = cls.RECORD_TYPE
        if "state" not in data:
            raise _fail(rt, "missing field 'state'")
        rec = cls(
            task_id=_get(data, rt, "task_id", str),
            attempt=_get(data, rt, "attempt", int),
            agent_id=_get(data, rt, "agent_id", str),
            epoch=_get(data, rt, "epoch", int),
            step=_get(data, rt, "step", int),
            state=data["state"],
            written_at=_get(data, rt, "written_at", float),
            schema_version=data["schema_version"],
        )
        _nonempty(rt, "task_id", rec.task_id)
        _nonneg(rt, "step", rec.step)
        if rec.attempt < 1:
            raise _fail(rt, "field 'attempt' must be >= 1")
        return rec


@dataclasses.dataclass(frozen=True, slots=True)
class CheckpointRef(Record):
    """Where a checkpoint lies: partition and offset in the checkpoints topic, and its step."""

    RECORD_TYPE: ClassVar[str] = "checkpoint_ref"
    partition: int
    offset: int
    step: int

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        rt = cls.RECORD_TYPE
        rec = cls(
            partition=_get(data, rt, "partition", int),
            offset=_get(data, rt, "offset", int),
            step=_get(data, rt, "step", int),
        )
        for key in ("partition", "offset", "step"):
            _nonneg(rt, key, getattr(rec, key))
        return rec


@dataclasses.dataclass(frozen=True, slots=True)
class SourceRef(Record):
    """Where a task was taken from: topic, partition and offset of the normal task record."""

    RECORD_TYPE: ClassVar[str] = "source_ref"
    topic: str
    partition: int
    offset: int

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        rt = cls.RECORD_TYPE
        rec = cls(
            topic=_get(data, rt, "topic", str),
            partition=_get(data, rt, "partition", int),
            offset=_get(data, rt, "offset", int),
        )
        _nonneg(rt, "partition", rec.partition)
        _nonneg(rt, "offset", rec.offset)
        return rec


@dataclasses.dataclass(frozen=True, slots=True)
class TaskEvent(Record):
    """Agent lifecycle and task progress; topic ``task-events``, key ``agent_id``.

    ``agent_started`` / ``agent_stopped`` carry no task; every other kind carries ``task_id`` and
    ``attempt``. ``claiming`` and ``claimed`` carry the task itself; ``claiming`` also carries where
    it came from (``source``) when it came from the normal task topic. ``checkpointed`` and
    ``released`` carry the checkpoint's location.
    """

    RECORD_TYPE: ClassVar[str] = "task_event"
    kind: EventKind
    agent_id: str
    epoch: int
    at: float
    task_id: str | None = None
    attempt: int | None = None
    task: Task | None = None
    source: SourceRef | None = None
    checkpoint: CheckpointRef | None = None
    capacity: int | None = None
    pool: Pool | None = None
    error: str | None = None
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        rt = cls.RECORD_TYPE
        rec = cls(
            kind=_enum(data, rt, "kind", EventKind),
            agent_id=_get(data, rt, "agent_id", str),
            epoch=_get(data, rt, "epoch", int),
            at=_get(data, rt, "at", float),
            task_id=_get(data, rt, "task_id", str, optional=True),
            attempt=_get(data, rt, "attempt", int, optional=True),
            task=_nested(data, rt, "task", Task, optional=True),
            source=_nested(data, rt, "source", SourceRef, optional=True),
            checkpoint=_nested(data, rt, "checkpoint", CheckpointRef, optional=True),
            capacity=_get(data, rt, "capacity", int, optional=True),
            pool=_enum(data, rt, "pool", Pool, optional=True),
            error=_get(data, rt, "error", str, optional=True),
            schema_version=data["schema_version"],
        )
        _nonempty(rt, "agent_id", rec.agent_id)
        if rec.kind in TASK_EVENT_KINDS:
            if rec.task_id is None or rec.attempt is None:
                raise _fail(rt, f"a {rec.kind.value} event needs 'task_id' and 'attempt'")
            if rec.attempt < 1:
                raise _fail(rt, "field 'attempt' must be >= 1")
        if rec.kind in (EventKind.CLAIMING, EventKind.CLAIMED) and rec.task is None:
            raise _fail(rt, f"a {rec.kind.value} event needs 'task'")
        if rec.kind is EventKind.CHECKPOINTED and rec.checkpoint is None:
            raise _fail(rt, "a checkpointed event needs 'checkpoint'")
        return rec


@dataclasses.dataclass(frozen=True, slots=True)
class PlanEntry(Record):
    """One task's move in a control decision: new attempt, target (or none yet), resume point."""

    RECORD_TYPE: ClassVar[str] = "plan_entry"
    task_id: str
    attempt: int
    target_agent_id: str | None = None
    target_epoch: int | None = None
    checkpoint: CheckpointRef | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        rt = cls.RECORD_TYPE
        rec = cls(
            task_id=_get(data, rt, "task_id", str),
            attempt=_get(data, rt, "attempt", int),
            target_agent_id=_get(data, rt, "target_agent_id", str, optional=True),
            target_epoch=_get(data, rt, "target_epoch", int, optional=True),
            checkpoint=_nested(data, rt, "checkpoint", CheckpointRef, optional=True),
        )
        if (rec.target_agent_id is None) != (rec.target_epoch is None):
            raise _fail(rt, "'target_agent_id' and 'target_epoch' come together")
        if rec.attempt < 2:
            raise _fail(rt, "a re-dispatched attempt is >= 2")
        return rec


@dataclasses.dataclass(frozen=True, slots=True)
class Control(Record):
    """A monitor decision about one agent; topic ``control``, key ``agent_id``.

    The first ``fence`` for an epoch, and the first plan entry for a ``(task_id, attempt)``, in the
    agent's control partition are the ones that count: later duplicates are ignored by everyone.
    """

    RECORD_TYPE: ClassVar[str] = "control"
    kind: ControlKind
    agent_id: str
    epoch: int
    decision_id: str
    issued_at: float
    reason: DispatchReason | None = None
    plan: tuple[PlanEntry, ...] = ()
    last_heartbeat_age_s: float | None = None
    monitor_id: str | None = None
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        rt = cls.RECORD_TYPE
        rec = cls(
            kind=_enum(data, rt, "kind", ControlKind),
            agent_id=_get(data, rt, "agent_id", str),
            epoch=_get(data, rt, "epoch", int),
            decision_id=_get(data, rt, "decision_id", str),
            issued_at=_get(data, rt, "issued_at", float),
            reason=_enum(data, rt, "reason", DispatchReason, optional=True),
            plan=_list_of(data, rt, "plan", PlanEntry),
            last_heartbeat_age_s=_get(data, rt, "last_heartbeat_age_s", float, optional=True),
            monitor_id=_get(data, rt, "monitor_id", str, optional=True),
            schema_version=data["schema_version"],
        )
        _nonempty(rt, "agent_id", rec.agent_id)
        return rec


@dataclasses.dataclass(frozen=True, slots=True)
class Redispatch(Record):
    """A task moved to a chosen agent; topic ``tasks.priority``, key ``target_agent_id``.

    Identical copies of one ``(task_id, attempt)`` can appear after a monitor restart; receivers
    act on the first and ignore the rest.
    """

    RECORD_TYPE: ClassVar[str] = "redispatch"
    task: Task
    attempt: int
    target_agent_id: str
    target_epoch: int
    reason: DispatchReason
    from_agent_id: str
    from_epoch: int
    decision_id: str
    dispatched_at: float
    checkpoint: CheckpointRef | None = None
    schema_version: int = SCHEMA_VERSION

    @property
    def task_id(self) -> str:
        """The moved task's id."""
        return self.task.task_id

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        rt = cls.RECORD_TYPE
        task = _nested(data, rt, "task", Task, optional=False)
        assert task is not None
        rec = cls(
            task=task,
            attempt=_get(data, rt, "attempt", int),
            target_agent_id=_get(data, rt, "target_agent_id", str),
            target_epoch=_get(data, rt, "target_epoch", int),
            reason=_enum(data, rt, "reason", DispatchReason),
            from_agent_id=_get(data, rt, "from_agent_id", str),
            from_epoch=_get(data, rt, "from_epoch", int),
            decision_id=_get(data, rt, "decision_id", str),
            dispatched_at=_get(data, rt, "dispatched_at", float),
            checkpoint=_nested(data, rt, "checkpoint", CheckpointRef, optional=True),
            schema_version=data["schema_version"],
        )
        if rec.attempt < 2:
            raise _fail(rt, "a re-dispatched attempt is >= 2")
        return rec


@dataclasses.dataclass(frozen=True, slots=True)
class MovedTask(Record):
    """One line of a failover audit record."""

    RECORD_TYPE: ClassVar[str] = "moved_task"
    task_id: str
    attempt: int
    target_agent_id: str | None = None
    resume_step: int | None = None  # the checkpointed step it resumes after; None = from the start

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        rt = cls.RECORD_TYPE
        return cls(
            task_id=_get(data, rt, "task_id", str),
            attempt=_get(data, rt, "attempt", int),
            target_agent_id=_get(data, rt, "target_agent_id", str, optional=True),
            resume_step=_get(data, rt, "resume_step", int, optional=True),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Failover(Record):
    """Audit record of an applied decision; topic ``failovers``, key ``agent_id``.

    A monitor restart mid-apply can write one again: readers de-duplicate by ``decision_id``.
    """

    RECORD_TYPE: ClassVar[str] = "failover"
    agent_id: str
    epoch: int
    decision_id: str
    reason: DispatchReason
    decided_at: float
    applied_at: float
    moved: tuple[MovedTask, ...] = ()
    queued: tuple[str, ...] = ()
    last_heartbeat_age_s: float | None = None
    monitor_id: str | None = None
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        rt = cls.RECORD_TYPE
        queued = _get(data, rt, "queued", list, optional=True) or []
        if not all(isinstance(t, str) for t in queued):
            raise _fail(rt, "field 'queued' must be a list of task ids")
        return cls(
            agent_id=_get(data, rt, "agent_id", str),
            epoch=_get(data, rt, "epoch", int),
            decision_id=_get(data, rt, "decision_id", str),
            reason=_enum(data, rt, "reason", DispatchReason),
            decided_at=_get(data, rt, "decided_at", float),
            applied_at=_get(data, rt, "applied_at", float),
            moved=_list_of(data, rt, "moved", MovedTask),
            queued=tuple(queued),
            last_heartbeat_age_s=_get(data, rt, "last_heartbeat_age_s", float, optional=True),
            monitor_id=_get(data, rt, "monitor_id", str, optional=True),
            schema_version=data["schema_version"],
        )


@dataclasses.dataclass(frozen=True, slots=True)
class DeadLetter(Record):
    """A record that failed decoding or validation; topic ``dead-letter``, key: the original key."""

    RECORD_TYPE: ClassVar[str] = "dead_letter"
    topic: str
    partition: int
    offset: int
    reason: str
    at: float
    key: str | None = None  # original key, UTF-8 with replacement characters
    value: str | None = None  # original value, UTF-8 with replacement characters, cut at 64 KiB
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        rt = cls.RECORD_TYPE
        return cls(
            topic=_get(data, rt, "topic", str),
            partition=_get(data, rt, "partition", int),
            offset=_get(data, rt, "offset", int),
            reason=_get(data, rt, "reason", str),
            at=_get(data, rt, "at", float),
            key=_get(data, rt, "key", str, optional=True),
            value=_get(data, rt, "value", str, optional=True),
            schema_version=data["schema_version"],
        )


@dataclasses.dataclass(frozen=True, slots=True)
class FleetAgent(Record):
    """One healthy agent epoch in a :class:`FleetSummary`: a target other workers may choose."""

    RECORD_TYPE: ClassVar[str] = "fleet_agent"
    agent_id: str
    epoch: int
    capacity: int
    in_flight: int  # tasks held or reserved, as the owning worker counts them
    pool: Pool = Pool.ACTIVE
    draining: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        rt = cls.RECORD_TYPE
        rec = cls(
            agent_id=_get(data, rt, "agent_id", str),
            epoch=_get(data, rt, "epoch", int),
            capacity=_get(data, rt, "capacity", int),
            in_flight=_get(data, rt, "in_flight", int),
            pool=_enum(data, rt, "pool", Pool, optional=True) or Pool.ACTIVE,
            draining=bool(_get(data, rt, "draining", bool, optional=True)),
        )
        _nonempty(rt, "agent_id", rec.agent_id)
        _nonneg(rt, "capacity", rec.capacity)
        _nonneg(rt, "in_flight", rec.in_flight)
        return rec


@dataclasses.dataclass(frozen=True, slots=True)
class FleetSummary(Record):
    """The healthy agents one monitor worker owns; topic ``fleet``, key ``monitor_id``.

    Each worker reads only its own heartbeat partitions; these summaries let every worker choose
    failover targets among the whole fleet. ``partitions`` are the agent partitions the publisher
    owned when it wrote the summary: a reader trusts it only for those, and only while it is the
    newest summary received that claims them.
    """

    RECORD_TYPE: ClassVar[str] = "fleet_summary"
    monitor_id: str
    at: float  # publisher's wall clock, informational: readers age summaries by time of receipt
    partitions: tuple[int, ...]
    agents: tuple[FleetAgent, ...]
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        rt = cls.RECORD_TYPE
        partitions = _get(data, rt, "partitions", list)
        if not all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in partitions):
            raise _fail(rt, "field 'partitions' must be a list of partition numbers (>= 0)")
        if "agents" not in data:
            raise _fail(rt, "missing field 'agents'")
        rec = cls(
            monitor_id=_get(data, rt, "monitor_id", str),
            at=_get(data, rt, "at", float),
            partitions=tuple(partitions),
            agents=_list_of(data, rt, "agents", FleetAgent),
            schema_version=data["schema_version"],
        )
        _nonempty(rt, "monitor_id", rec.monitor_id)
        return rec


#: Every top-level record type, by its schema file stem.
RECORD_TYPES: dict[str, type[Record]] = {
    cls.RECORD_TYPE: cls
    for cls in (
        Heartbeat,
        Task,
        Checkpoint,
        TaskEvent,
        Control,
        Redispatch,
        Failover,
        DeadLetter,
        FleetSummary,
    )
}
