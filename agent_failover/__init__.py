"""agent-failover: Kafka-native failover for fleets of AI agents.

Agents embed the SDK (:class:`Agent` / :class:`AsyncAgent`): heartbeats, durable checkpoints,
failover tasks before normal ones, fencing. :class:`TaskSubmitter` submits work and waits for
its outcome (:class:`Submission`). The monitor (the ``streams`` package) detects dead
agents and re-dispatches their tasks from their last checkpoint. The public surface is
``__all__``, pinned by ``tests/unit/test_exports.py``.
"""

from __future__ import annotations

from agent_failover.config import (
    AgentConfig,
    CheckpointMode,
    CheckpointPolicy,
    KafkaConfig,
    MonitorConfig,
    Topics,
)
from agent_failover.errors import (
    AgentFailoverError,
    BrokerError,
    CodecError,
    ConfigError,
    EmbeddedBrokerError,
    FencedError,
    InternalError,
    LifecycleError,
    OutcomeTimeout,
    TaskError,
    TaskFailed,
    TaskReleased,
)
from agent_failover.models import Checkpoint, CheckpointRef, OutcomeKind, Task, TaskOutcome
from agent_failover.sdk import (
    Agent,
    AsyncAgent,
    Submission,
    TaskContext,
    TaskSubmitter,
    current_task,
)
from agent_failover.topics import ensure_topics

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentFailoverError",
    "AsyncAgent",
    "BrokerError",
    "Checkpoint",
    "CheckpointMode",
    "CheckpointPolicy",
    "CheckpointRef",
    "CodecError",
    "ConfigError",
    "EmbeddedBrokerError",
    "FencedError",
    "InternalError",
    "KafkaConfig",
    "LifecycleError",
    "MonitorConfig",
    "OutcomeKind",
    "OutcomeTimeout",
    "Submission",
    "Task",
    "TaskContext",
    "TaskError",
    "TaskFailed",
    "TaskOutcome",
    "TaskReleased",
    "TaskSubmitter",
    "Topics",
    "__version__",
    "current_task",
    "ensure_topics",
]
