"""The asyncio front against a real broker: same core, coroutine handlers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from agent_failover.config import AgentConfig, CheckpointPolicy, Topics
from agent_failover.models import EventKind, Task, TaskEvent
from agent_failover.sdk import AsyncAgent, TaskContext, current_task

from .conftest import Reader, dispatch

pytestmark = pytest.mark.broker


def kinds(records: list[TaskEvent], task_id: str) -> list[EventKind]:
    return [e.kind for e in records if e.task_id == task_id]


def test_async_agent_claims_checkpoints_completes_and_releases(
    agent_config: Callable[..., AgentConfig],
    reader: Callable[[str, type[Any]], Reader],
    topics: Topics,
    sdk_bootstrap: str,
) -> None:
    release_me = asyncio.Event()

    async def handler(ctx: TaskContext) -> str:
        assert current_task() is ctx
        if ctx.task.payload.get("hold"):
            await ctx.acheckpoint(0, "held")
            await ctx.aprogress(1, "pending")  # on demand: written at release
            release_me.set()
            while not ctx.stopping:
                await asyncio.sleep(0.01)  # cooperative wait for the stop flag
            ctx.raise_if_stopping()
        for step in range(ctx.next_step, 2):
            await ctx.acheckpoint(step, {"step": step})
        return "done"

    quick = Task(task_id=f"q-{uuid.uuid4().hex[:6]}", task_type="t", payload={})
    held = Task(task_id=f"h-{uuid.uuid4().hex[:6]}", task_type="t", payload={"hold": True})
    events = reader(topics.task_events, TaskEvent)
    config = agent_config(capacity=2, checkpoint_policy=CheckpointPolicy.on_demand())

    async def scenario() -> None:
        async with AsyncAgent(config, handler) as agent:
            runner = asyncio.create_task(agent.run(handle_signals=False))
            for t in (quick, held):
                await asyncio.to_thread(dispatch, sdk_bootstrap, topics, agent, t)
            await asyncio.to_thread(
                events.wait_for,
                lambda recs: EventKind.COMPLETED in kinds(recs, quick.task_id),
                "the quick task",
            )
            await asyncio.wait_for(release_me.wait(), 60)
            agent.stop()
            await runner

    asyncio.run(scenario())
    events.wait_for(lambda recs: EventKind.AGENT_STOPPED in [e.kind for e in recs], "stop")
    events.read_to_end()  # the task lists below must be complete
    assert kinds(events.records, quick.task_id) == [
        EventKind.CLAIMED,
        EventKind.CHECKPOINTED,
        EventKind.CHECKPOINTED,
        EventKind.COMPLETED,
    ]
    assert kinds(events.records, held.task_id)[-1] is EventKind.RELEASED
    released = next(e for e in events.records if e.kind is EventKind.RELEASED)
    assert released.checkpoint is not None and released.checkpoint.step == 1
