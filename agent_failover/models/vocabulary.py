"""The vocabulary of the wire records: their enums and the constrained field types they share.

A field type here carries its range and its description (``msgspec.Meta``), so that the decoder
and the generated JSON Schemas (``python -m agent_failover.models.schemagen``) read them from
one place.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

from msgspec import Meta

#: The newest record schema version this library reads and writes.
SCHEMA_VERSION = 1

#: The largest value of a 63-bit integer (Kafka's int64 without its sign): epochs stay within it.
MAX_INT63 = 2**63 - 1

#: The smallest default record size limit a record meets on its way: librdkafka's
#: ``message.max.bytes`` (Kafka brokers and the monitor's client allow 1 MiB). A record built from
#: another one (a decision carries its task, and so do the dispatch and the agent's events after
#: it) must fit it, with room for its headers and the other records' few hundred bytes more.
RECORD_LIMIT = 1_000_000
#: That room: a record the monitor writes carrying a task stays this far below the limit.
RECORD_MARGIN = 4096

#: How deep a free JSON value (a task's ``payload``, a checkpoint's ``state``) may nest. orjson
#: reads 1,024 levels but writes at most 254, and records embed these values a few levels down
#: (a task inside an event, the monitor's table record); a deeper value would decode, then fail
#: to be written again, so the decoder refuses it.
MAX_JSON_DEPTH = 240

#: The largest result a ``completed`` event (and the task's outcome) carries: the handler's return
#: value as compact JSON, in bytes. Both records stay far below Kafka's default 1 MB record limit;
#: a larger result belongs elsewhere (object storage), with a reference returned instead.
MAX_RESULT_BYTES = 262_144


class Pool(enum.StrEnum):
    """Which pool an agent serves in: active agents get new work, standbys only failovers."""

    ACTIVE = "active"
    STANDBY = "standby"


class EventKind(enum.StrEnum):
    """Kinds of record on the task-events topic (keyed by agent id)."""

    AGENT_STARTED = "agent_started"
    AGENT_STOPPED = "agent_stopped"
    CLAIMED = "claimed"
    CHECKPOINTED = "checkpointed"
    COMPLETED = "completed"
    FAILED = "failed"
    RELEASED = "released"


#: The event kinds about one task attempt (every kind but the agent lifecycle ones).
TASK_EVENT_KINDS = frozenset(
    {
        EventKind.CLAIMED,
        EventKind.CHECKPOINTED,
        EventKind.COMPLETED,
        EventKind.FAILED,
        EventKind.RELEASED,
    }
)


class OutcomeKind(enum.StrEnum):
    """How a task ended, as its one outcome record says."""

    COMPLETED = "completed"
    FAILED = "failed"


class ControlKind(enum.StrEnum):
    """Kinds of record on the control topic (keyed by the agent they concern)."""

    FENCE = "fence"  # the epoch is dead: stop; its tasks move as the plan says
    DISPATCH = "dispatch"  # move some tasks of a live or fenced epoch (released, late, queued)
    DRAIN = "drain"  # stop taking new tasks, finish the current ones
    PROMOTE = "promote"  # a standby becomes active


class DispatchReason(enum.StrEnum):
    """Why a task was dispatched: new work, or why it moved."""

    NEW = "new"  # new work from the task topic, placed by the monitor's intake (attempt 1)
    HEARTBEAT_TIMEOUT = "heartbeat_timeout"
    RESTARTED = "restarted"  # the same agent id came back with a new epoch
    RELEASED = "released"  # the agent let the task go (graceful shutdown)
    STOPPED = "stopped"  # the agent said it stopped while still holding the task
    LATE_CLAIM = "late_claim"  # a dispatch (or a claim) reached an epoch already fenced
    QUEUED = "queued"  # waited for a healthy agent
    # The agent's heartbeat settings cannot satisfy the monitor's timeout: refused at once.
    MISCONFIGURED = "misconfigured"


class JsonValue:
    """Marks a field that holds any JSON value: the records check how deep it nests."""

    __slots__ = ()


#: Any JSON value (a task's payload, a checkpoint's state), at most MAX_JSON_DEPTH levels deep.
JSON = Annotated[Any, JsonValue()]

AgentId = Annotated[str, Meta(min_length=1)]
TaskId = Annotated[str, Meta(min_length=1)]
NonNegative = Annotated[int, Meta(ge=0)]
Epoch = Annotated[
    int,
    Meta(
        ge=0,
        le=MAX_INT63,
        description=(
            "Incarnation of the agent process, new at every start (the SDK uses time.time_ns())."
        ),
    ),
]
Attempt = Annotated[
    int,
    Meta(ge=1, description="1 for new work from the task topic, +1 at every re-dispatch."),
]
NewAttempt = Annotated[
    int,
    Meta(
        ge=2,
        description="The new attempt: >= 2 (attempt 1 is the first dispatch of new work).",
    ),
]
Step = Annotated[
    int,
    Meta(ge=0, description="The last step completed and saved in this checkpoint (0-based)."),
]
DecisionId = Annotated[str, Meta(description="Unique id of the decision (UUID).")]
HeartbeatAge = Annotated[
    float,
    Meta(description="Seconds since the last heartbeat, on the monitor's clock, when decided."),
]
Version = Annotated[
    int,
    Meta(
        ge=1,
        le=SCHEMA_VERSION,
        description="Version of this record's schema; readers reject versions they do not know.",
    ),
]
