"""The public surfaces, `agent_failover` and `agent_failover.sdk`, are explicit and importable."""

from __future__ import annotations

import agent_failover
import agent_failover.errors
import agent_failover.sdk


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
    )
    for name in agent_failover.__all__:
        assert getattr(agent_failover, name) is not None


def test_every_public_callable_has_a_docstring() -> None:
    for name in agent_failover.__all__:
        obj = getattr(agent_failover, name)
        if callable(obj):
            assert obj.__doc__, name


def test_sdk_surface_is_pinned() -> None:
    assert sorted(agent_failover.sdk.__all__) == [
        "Agent",
        "AsyncAgent",
        "AsyncHandler",
        "Handler",
        "Submission",
        "TaskContext",
        "TaskReleased",
        "TaskSubmitter",
        "current_task",
    ]


def test_task_released_is_one_class_in_the_error_tree() -> None:
    released = agent_failover.errors.TaskReleased
    assert agent_failover.TaskReleased is released
    assert agent_failover.sdk.TaskReleased is released
    assert issubclass(released, agent_failover.AgentFailoverError)


def test_testing_surface_is_pinned() -> None:
    import agent_failover.sdk.testing as testing

    assert sorted(testing.__all__) == [
        "InMemorySink",
        "MemoryTransport",
        "bind",
        "fence",
        "make_context",
        "request_stop",
        "resume_context",
    ]
    for name in testing.__all__:
        assert getattr(testing, name).__doc__, name
