"""The package's public surface is explicit and importable."""

from __future__ import annotations

import agent_failover


def test_public_surface_is_pinned() -> None:
    assert sorted(agent_failover.__all__) == sorted(
        [
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
            "KafkaConfig",
            "LifecycleError",
            "MonitorConfig",
            "Task",
            "TaskContext",
            "TaskError",
            "TaskReleased",
            "TaskSubmitter",
            "Topics",
            "__version__",
            "current_task",
            "ensure_topics",
        ]
    )
    for name in agent_failover.__all__:
        assert getattr(agent_failover, name) is not None


def test_every_public_callable_has_a_docstring() -> None:
    for name in agent_failover.__all__:
        obj = getattr(agent_failover, name)
        if callable(obj):
            assert obj.__doc__, name
