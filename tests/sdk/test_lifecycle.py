"""Lifecycle rules that need no broker: no I/O in __init__, no reuse after close, run() errors."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest
from confluent_kafka import KafkaError, KafkaException

from agent_failover.config import AgentConfig, KafkaConfig
from agent_failover.errors import BrokerError, InternalError, LifecycleError
from agent_failover.models import Task
from agent_failover.sdk import Agent, AsyncAgent, TaskContext, TaskSubmitter
from agent_failover.sdk.core import AgentCore, State

# Nothing listens here: constructing must not try to connect.
UNREACHABLE = KafkaConfig("127.0.0.1:1")


def config() -> AgentConfig:
    return AgentConfig(kafka=UNREACHABLE, agent_id="a")


def handler(ctx: TaskContext) -> None:
    return None


async def async_handler(ctx: TaskContext) -> None:
    return None


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


def in_other_thread(call: Callable[[], object], name: str = "other") -> BaseException | None:
    """Run ``call`` in a thread of its own; what it raised, if anything."""
    raised: list[BaseException] = []

    def target() -> None:
        try:
            call()
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=target, name=name)
    thread.start()
    thread.join(60)
    assert not thread.is_alive()
    return raised[0] if raised else None


def test_signal_handling_off_the_main_thread_is_refused_before_start() -> None:
    agent = Agent(config(), handler)
    raised = in_other_thread(lambda: agent.run(handle_signals=True))
    assert isinstance(raised, LifecycleError) and "main thread" in str(raised)
    assert agent._core.state is State.NEW  # nothing was started
    agent.close()


def test_async_signal_handling_off_the_main_thread_is_refused_before_start() -> None:
    agent = AsyncAgent(config(), async_handler)
    raised = in_other_thread(lambda: asyncio.run(agent.run(handle_signals=True)))
    assert isinstance(raised, LifecycleError) and "main thread" in str(raised)
    assert agent._core.state is State.NEW


def failed_core(exc: BaseException) -> AgentCore:
    """A core whose listener thread died of ``exc`` (no broker: ``fail`` is all a thread calls)."""
    core = AgentCore(config(), lambda ctx: None)
    assert in_other_thread(lambda: core.fail(exc), name="af-a-listener") is None
    assert core.stop_requested.is_set()
    return core


def test_a_bug_in_a_background_thread_is_an_internal_error_not_a_broker_error() -> None:
    bug = TypeError("unsupported operand")
    with pytest.raises(InternalError) as raised:
        failed_core(bug).raise_for_outcome()
    error = raised.value
    assert not isinstance(error, BrokerError) and not error.retryable
    assert error.cause is bug and error.__cause__ is bug
    assert "af-a-listener" in str(error) and "TypeError: unsupported operand" in str(error)


def test_a_librdkafka_failure_in_a_background_thread_is_a_broker_error() -> None:
    fatal = KafkaException(KafkaError(KafkaError._FATAL, "fatal idempotent producer error"))
    with pytest.raises(BrokerError) as raised:
        failed_core(fatal).raise_for_outcome()
    assert raised.value.__cause__ is fatal and not raised.value.retryable


def test_a_library_error_in_a_background_thread_is_raised_as_it_is() -> None:
    refused = BrokerError("write to dead-letter refused", retryable=True)
    with pytest.raises(BrokerError) as raised:
        failed_core(refused).raise_for_outcome()
    assert raised.value is refused
