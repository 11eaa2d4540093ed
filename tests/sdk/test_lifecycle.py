"""Lifecycle rules that need no broker: no I/O in __init__, no reuse after close, exports."""

from __future__ import annotations

import asyncio

import pytest

import agent_failover.sdk as sdk
from agent_failover.config import AgentConfig, KafkaConfig
from agent_failover.errors import LifecycleError
from agent_failover.models import Task
from agent_failover.sdk import Agent, AsyncAgent, TaskContext, TaskSubmitter

# Nothing listens here: constructing must not try to connect.
UNREACHABLE = KafkaConfig("127.0.0.1:1")


def config() -> AgentConfig:
    return AgentConfig(kafka=UNREACHABLE, agent_id="a")


def handler(ctx: TaskContext) -> None:
    return None


async def async_handler(ctx: TaskContext) -> None:
    return None


def test_public_surface() -> None:
    assert sorted(sdk.__all__) == [
        "Agent",
        "AsyncAgent",
        "AsyncHandler",
        "Handler",
        "TaskContext",
        "TaskReleased",
        "TaskSubmitter",
        "current_task",
    ]


def test_construction_does_no_io_and_close_before_start_is_final() -> None:
    agent = Agent(config(), handler)
    with pytest.raises(LifecycleError):
        _ = agent.epoch
    agent.close()
    agent.close()  # idempotent
    with pytest.raises(LifecycleError):
        agent.start()
    with pytest.raises(LifecycleError):
        agent.run(handle_signals=False)


def test_fronts_check_the_handler_kind() -> None:
    with pytest.raises(TypeError):
        Agent(config(), async_handler)
    with pytest.raises(TypeError):
        AsyncAgent(config(), handler)  # type: ignore[arg-type]


def test_async_agent_close_before_start_is_final() -> None:
    async def scenario() -> None:
        agent = AsyncAgent(config(), async_handler)
        await agent.close()
        with pytest.raises(LifecycleError):
            await agent.start()

    asyncio.run(scenario())


def test_submitter_is_lazy_and_not_reusable() -> None:
    submitter = TaskSubmitter(UNREACHABLE)
    submitter.close()
    with pytest.raises(LifecycleError):
        submitter.submit(Task(task_id="t", task_type="x"))
