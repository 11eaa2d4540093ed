"""A whole agent without a broker: the in-memory transport carries its records, and plays the
monitor (dispatch, fence) for the test. What a user's own tests do."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from agent_failover import models as m
from agent_failover.config import AgentConfig, Topics
from agent_failover.dev.waiting import eventually
from agent_failover.errors import ConfigError, FencedError, LifecycleError, TaskFailed
from agent_failover.sdk import Agent, AsyncAgent, TaskContext
from agent_failover.sdk.testing import MemoryTransport
from tests.sdk.conftest import run_in_thread

WAIT = 30.0  # only a failure waits this long


def summarise(ctx: TaskContext) -> dict[str, object]:
    state = ctx.state or {"notes": []}
    for step in range(ctx.next_step, 3):
        state["notes"].append(f"note {step}")
        ctx.progress(step, state)
    return {"notes": len(state["notes"]), "resumed_at": ctx.next_step}


def task(task_id: str = "t-1", **payload: object) -> m.Task:
    return m.Task(task_id=task_id, task_type="summarise", payload=payload or None)


def test_a_dispatched_task_runs_and_its_return_value_is_the_result() -> None:
    transport = MemoryTransport()
    with Agent(transport.config(), summarise, transport=transport):
        submission = transport.dispatch(task())
        assert submission.result(timeout=WAIT) == {"notes": 3, "resumed_at": 0}
    assert [c.step for c in transport.checkpoints("t-1")] == [0, 1, 2]
    kinds = [e.kind for e in transport.events("t-1")]
    assert kinds[0] is m.EventKind.CLAIMED and kinds[-1] is m.EventKind.COMPLETED
    assert kinds.count(m.EventKind.CHECKPOINTED) == 3
    assert transport.events("t-1")[-1].result == {"notes": 3, "resumed_at": 0}
    stopped = [e for e in transport.events() if e.kind is m.EventKind.AGENT_STOPPED]
    assert [e.agent_id for e in stopped] == ["agent-1"]


def test_a_failover_resumes_after_the_step_it_names() -> None:
    transport = MemoryTransport()
    with Agent(transport.config(), summarise, transport=transport):
        earlier = {"notes": ["note 0", "note 1"]}
        submission = transport.dispatch(task(), resume=(1, earlier))
        assert submission.result(timeout=WAIT) == {"notes": 3, "resumed_at": 2}
        assert submission.outcome().attempt == 2
    assert [(c.attempt, c.step) for c in transport.checkpoints("t-1")] == [(1, 1), (2, 2)]


def test_a_handler_that_raises_fails_its_task_with_the_error() -> None:
    def broken(ctx: TaskContext) -> None:
        raise KeyError("doc")

    transport = MemoryTransport()
    with (
        Agent(transport.config(), broken, transport=transport),
        pytest.raises(TaskFailed, match="KeyError: 'doc'") as failed,
    ):
        transport.dispatch(task()).result(timeout=WAIT)
    assert failed.value.outcome.kind is m.OutcomeKind.FAILED


@pytest.mark.parametrize(
    ("returned", "reason"),
    [
        (object(), "the result is not JSON"),
        ("x" * m.MAX_RESULT_BYTES, "over the 262,144-byte limit"),
    ],
    ids=["not JSON", "too large"],
)
def test_a_result_the_contract_cannot_carry_fails_the_task_saying_why(
    returned: object, reason: str
) -> None:
    transport = MemoryTransport()
    with (
        Agent(transport.config(), lambda ctx: returned, transport=transport),
        pytest.raises(TaskFailed, match=reason),
    ):
        transport.dispatch(task()).result(timeout=WAIT)


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    opened = threading.Event()
    yield opened
    opened.set()  # never leave a handler thread waiting


def test_a_fence_stops_the_task_and_the_agent_and_nothing_more_is_written(
    gate: threading.Event,
) -> None:
    started, raised = threading.Event(), []

    def waits(ctx: TaskContext) -> None:
        started.set()
        gate.wait(WAIT)
        try:
            ctx.checkpoint(0, "after the fence")
        except FencedError as exc:
            raised.append(exc)
            raise

    transport = MemoryTransport()
    agent = Agent(transport.config(), waits, transport=transport).start()
    runner, run_raised = run_in_thread(agent)
    submission = transport.dispatch(task())
    assert started.wait(WAIT)
    transport.fence("agent-1")
    eventually(lambda: agent.fenced, WAIT, "the agent to read its fence")
    gate.set()
    runner.join(WAIT)
    assert [type(e) for e in run_raised] == [FencedError]
    assert len(raised) == 1  # the handler's write after the fence was refused
    assert not submission.done()
    assert transport.checkpoints("t-1") == []
    assert {e.kind for e in transport.events("t-1")} == {m.EventKind.CLAIMED}


def test_a_graceful_stop_releases_the_running_task_with_its_checkpoint() -> None:
    def slow(ctx: TaskContext) -> None:
        ctx.checkpoint(0, "first step")
        deadline = time.monotonic() + WAIT
        while not ctx.stopping and time.monotonic() < deadline:  # a long step, watching
            threading.Event().wait(0.01)
        ctx.raise_if_stopping()

    transport = MemoryTransport()
    with Agent(transport.config(), slow, transport=transport):
        transport.dispatch(task())
        eventually(
            lambda: any(e.kind is m.EventKind.CHECKPOINTED for e in transport.events("t-1")),
            WAIT,
            "the first checkpoint",
        )
    (released,) = [e for e in transport.events("t-1") if e.kind is m.EventKind.RELEASED]
    assert released.checkpoint is not None and released.checkpoint.step == 0


def test_an_async_agent_runs_on_the_same_transport() -> None:
    async def double(ctx: TaskContext) -> int:
        await ctx.acheckpoint(0, None)
        payload = ctx.task.payload
        assert isinstance(payload, dict)
        return 2 * int(payload["n"])

    async def main() -> object:
        transport = MemoryTransport()
        async with AsyncAgent(transport.config("async-1"), double, transport=transport):
            submission = transport.dispatch(task(n=21))
            return await asyncio.to_thread(submission.result, WAIT)

    assert asyncio.run(main()) == 42


def test_a_signing_fleet_runs_the_same() -> None:
    transport = MemoryTransport(signing_key="k" * 32)
    with Agent(transport.config(), summarise, transport=transport):
        assert transport.dispatch(task()).result(timeout=WAIT)["notes"] == 3  # type: ignore[index]


def test_misuse_is_a_clear_error() -> None:
    transport = MemoryTransport()
    with pytest.raises(LifecycleError, match="no agent running on this transport"):
        transport.dispatch(task())
    other = AgentConfig(kafka=transport.kafka, topics=Topics(prefix="other."))
    with pytest.raises(ConfigError, match=r"build its configuration with MemoryTransport\.config"):
        Agent(other, summarise, transport=transport).start()
    with (
        Agent(transport.config("a"), summarise, transport=transport),
        Agent(transport.config("b"), summarise, transport=transport),
    ):
        with pytest.raises(LifecycleError, match=r"running: \['a', 'b'\]"):
            transport.dispatch(task())
        assert transport.dispatch(task(), agent_id="b").result(timeout=WAIT) is not None
