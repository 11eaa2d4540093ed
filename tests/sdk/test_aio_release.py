"""The asyncio front hands a cancelled task back off the event loop, even as the loop shuts down.

No broker: the core is replaced by a recorder of ``task_done`` calls, which is all the front
calls when a handler ends.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from agent_failover.config import AgentConfig, KafkaConfig
from agent_failover.errors import TaskReleased
from agent_failover.models import Task
from agent_failover.sdk import AsyncAgent, TaskContext
from agent_failover.sdk.testing import make_context

#: Only a failing test waits this long.
DEADLINE_S = 30.0


class RecordingCore:
    """Stands in for the agent core: records each ``task_done`` and the thread it ran on.

    ``task_done`` first waits for ``gate``, as a final checkpoint waits for the broker.
    """

    def __init__(self, *, gate_open: bool) -> None:
        self.gate = threading.Event()
        if gate_open:
            self.gate.set()
        self.gate_opened = False
        self.calls: list[tuple[str, BaseException | None, int]] = []
        self.entered = threading.Event()
        self.reported = threading.Event()

    def admit(self, ctx: TaskContext, timeout: float | None) -> bool:
        """Every handler may start (no fence, a valid lease)."""
        return True

    def task_done(self, ctx: TaskContext, exc: BaseException | None, result: object = None) -> None:
        self.entered.set()
        self.gate_opened = self.gate.wait(DEADLINE_S)
        self.calls.append((ctx.task_id, exc, threading.get_ident()))
        self.reported.set()


class Running:
    """An AsyncAgent on the running loop with one handler in progress (it never returns)."""

    def __init__(self, core: RecordingCore) -> None:
        self.started = asyncio.Event()

        async def handler(ctx: TaskContext) -> None:
            self.started.set()
            await asyncio.Event().wait()

        config = AgentConfig(kafka=KafkaConfig("127.0.0.1:1"), agent_id="a")  # never connects
        self.agent = AsyncAgent(config, handler)
        self.agent._core = core  # type: ignore[assignment]
        self.agent._loop = asyncio.get_running_loop()
        self.ctx, _ = make_context(Task(task_id="t1", task_type="demo"))

    async def spawn(self) -> asyncio.Task[None]:
        self.agent._spawn(self.ctx)
        await asyncio.wait_for(self.started.wait(), DEADLINE_S)
        (task,) = self.agent._tasks
        return task


def assert_released_once_off(core: RecordingCore, loop_thread: int) -> None:
    assert core.reported.wait(DEADLINE_S), "the cancelled task was never reported"
    ((task_id, exc, thread),) = core.calls
    assert task_id == "t1" and isinstance(exc, TaskReleased)
    assert thread != loop_thread, "task_done ran on the event loop"


async def cancelled(task: asyncio.Task[None]) -> None:
    with pytest.raises(asyncio.CancelledError):
        await task


def test_a_cancelled_task_is_released_off_the_loop_which_keeps_running() -> None:
    core = RecordingCore(gate_open=False)

    async def scenario() -> None:
        task = await Running(core).spawn()
        task.cancel()
        # Runs only if the loop is free while the release waits (a blocked loop never gets here).
        asyncio.get_running_loop().call_soon(core.gate.set)
        await cancelled(task)

    asyncio.run(scenario())
    assert_released_once_off(core, threading.get_ident())
    assert core.gate_opened, "the event loop was blocked while the release waited"


def test_a_task_cancelled_by_a_closing_loop_is_still_released() -> None:
    core = RecordingCore(gate_open=True)

    async def scenario() -> None:
        await Running(core).spawn()
        # A loop on its way down may have shut its executor already; asyncio.run then cancels
        # the handler still running.
        await asyncio.get_running_loop().shutdown_default_executor()

    asyncio.run(scenario())
    assert_released_once_off(core, threading.get_ident())


def test_a_second_cancel_does_not_lose_the_release() -> None:
    core = RecordingCore(gate_open=False)

    async def scenario() -> None:
        task = await Running(core).spawn()
        task.cancel()
        assert await asyncio.to_thread(core.entered.wait, DEADLINE_S)
        task.cancel()  # while the release is still waiting
        await cancelled(task)

    asyncio.run(scenario())
    core.gate.set()
    assert_released_once_off(core, threading.get_ident())
