"""Wire records: frozen dataclasses, each the one definition of its record.

Every top-level record carries ``schema_version``. Decoding is strict: a missing field, a wrong
type, a value out of range, an unknown enum value, a broken cross-field rule or an unknown schema
version raises :class:`~agent_failover.errors.CodecError` naming the field and the reason (the
monitor sends such records to the dead-letter topic). Unknown extra fields are ignored so that
newer minor versions of a producer stay readable. ``schemas/*.schema.json`` are generated from
these classes (``make schemas``); ``tests/unit/test_schemas.py`` fails when they drift.
"""

from __future__ import annotations

from agent_failover.models.base import Needs, Record
from agent_failover.models.deadletter import (
    DeadLetter,
    Source,
    cut_key,
    dead_letter,
    internal_reason,
)
from agent_failover.models.decisions import Control, Failover, MovedTask, PlanEntry, Redispatch
from agent_failover.models.records import (
    Checkpoint,
    CheckpointRef,
    FleetAgent,
    FleetSummary,
    Heartbeat,
    SourceRef,
    Task,
    TaskEvent,
    TaskOutcome,
    plain_result,
)
from agent_failover.models.vocabulary import (
    JSON,
    MAX_INT63,
    MAX_JSON_DEPTH,
    MAX_RESULT_BYTES,
    RECORD_LIMIT,
    RECORD_MARGIN,
    SCHEMA_VERSION,
    TASK_EVENT_KINDS,
    ControlKind,
    DispatchReason,
    EventKind,
    OutcomeKind,
    Pool,
)

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
        TaskOutcome,
    )
}

__all__ = [
    "JSON",
    "MAX_INT63",
    "MAX_JSON_DEPTH",
    "MAX_RESULT_BYTES",
    "RECORD_LIMIT",
    "RECORD_MARGIN",
    "RECORD_TYPES",
    "SCHEMA_VERSION",
    "TASK_EVENT_KINDS",
    "Checkpoint",
    "CheckpointRef",
    "Control",
    "ControlKind",
    "DeadLetter",
    "DispatchReason",
    "EventKind",
    "Failover",
    "FleetAgent",
    "FleetSummary",
    "Heartbeat",
    "MovedTask",
    "Needs",
    "OutcomeKind",
    "PlanEntry",
    "Pool",
    "Record",
    "Redispatch",
    "Source",
    "SourceRef",
    "Task",
    "TaskEvent",
    "TaskOutcome",
    "cut_key",
    "dead_letter",
    "internal_reason",
    "plain_result",
]
