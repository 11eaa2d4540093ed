"""``ctx.guard()``, the lease and the graceful handoff, on a real broker.

A stalled agent is simulated by holding the core's lock: its heartbeat and listener threads
block on it (as every thread of a frozen process would), while the handler thread goes on.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from agent_failover.config import Topics
from agent_failover.dev.waiting import eventually
from agent_failover.errors import ConfigError, FencedError
from agent_failover.models import (
    Control,
    ControlKind,
    DispatchReason,
    EventKind,
    PlanEntry,
    TaskEvent,
)
from agent_failover.sdk import Agent, TaskContext, TaskReleased

from .conftest import DEADLINE_S, MakeReader, Start, dispatch, run_in_thread, task, write

pytestmark = pytest.mark.broker


def fence(agent: Agent, reason: DispatchReason, **fields: Any) -> Control:
    return Control(
        kind=ControlKind.FENCE,
        agent_id=agent.agent_id,
        epoch=agent.epoch,
        decision_id=uuid.uuid4().hex,
        issued_at=time.time(),
        reason=reason,
        **fields,
    )


def kinds(events: list[TaskEvent], task_id: str) -> list[EventKind]:
    return [e.kind for e in events if e.task_id == task_id]


def test_a_stalled_agent_acts_only_after_its_lease_is_back_and_finds_its_fence(
    agent_config: Callable[..., Any], reader: MakeReader, topics: Topics, sdk_bootstrap: str
) -> None:
    effects: list[int] = []
    outcome: list[BaseException] = []
    call_done = threading.Event()

    def handler(ctx: TaskContext) -> None:
        ctx.checkpoint(0, "zero")
        effects.append(0)
        call_done.wait(DEADLINE_S)  # a model call, during which the agent stalls
        try:
            ctx.guard()
            effects.append(1)  # the side effect a fenced epoch must not perform
        except FencedError as exc:
            outcome.append(exc)
            raise

    agent = Agent(agent_config(heartbeat_interval=0.1, heartbeat_timeout=0.6), handler)
    agent.start()
    runner, stopped = run_in_thread(agent)
    core = agent._core
    waiting = threading.Event()
    wait_lease = core._admission.wait_lease

    def noting_wait(ctx: TaskContext, timeout: float | None) -> bool:
        waiting.set()
        return wait_lease(ctx, timeout)

    core._admission.wait_lease = noting_wait  # type: ignore[method-assign]
    t = task()
    dispatch(sdk_bootstrap, topics, agent, t)
    events = reader(topics.task_events, TaskEvent)
    events.wait_for(lambda recs: EventKind.CHECKPOINTED in kinds(recs, t.task_id), "step 0")
    with core._lock:  # the stall: no heartbeat, no control record handled
        eventually(lambda: not core.lease.valid(), DEADLINE_S, "the lease to run out")
        write(
            sdk_bootstrap,
            topics.control,
            agent.agent_id,
            fence(agent, DispatchReason.HEARTBEAT_TIMEOUT),
        )
        call_done.set()  # the call returns while the fence sits unread
        assert waiting.wait(DEADLINE_S), "guard() did not wait for the lease"
        assert effects == [0]
    runner.join(DEADLINE_S)
    assert not runner.is_alive()
    assert effects == [0]
    assert len(outcome) == 1 and agent.fenced
    assert len(stopped) == 1 and isinstance(stopped[0], FencedError)


def test_after_a_stall_without_a_fence_the_step_goes_on(
    start_agent: Start, reader: MakeReader, topics: Topics, sdk_bootstrap: str
) -> None:
    order: list[str] = []
    call_done = threading.Event()

    def handler(ctx: TaskContext) -> None:
        call_done.wait(DEADLINE_S)
        ctx.guard()
        order.append("side effect")
        ctx.checkpoint(0, "zero")

    agent = start_agent(handler, heartbeat_interval=0.1, heartbeat_timeout=0.6)
    core = agent._core
    synced = core.lease.synced

    def noting_synced(started_at: float) -> bool:
        # Noted on entry: the read has reached the end by then, and the lease turns valid (waking
        # the guard) inside the call, so an entry made after it could come after the step.
        at = len(order)
        order.append("reading control")
        valid = synced(started_at)
        if valid:
            order[at] = "control read to its end"
        else:
            del order[at]  # only the listener calls it: nothing of its own came after
        return valid

    core.lease.synced = noting_synced  # type: ignore[method-assign]
    t = task()
    dispatch(sdk_bootstrap, topics, agent, t)
    eventually(lambda: t.task_id in core.status().running, DEADLINE_S, "the task to start")
    with core._lock:
        eventually(lambda: not core.lease.valid(), DEADLINE_S, "the lease to run out")
        call_done.set()
    events = reader(topics.task_events, TaskEvent)
    events.wait_for(lambda recs: EventKind.COMPLETED in kinds(recs, t.task_id), "completion")
    assert order == ["control read to its end", "side effect"]


def test_no_task_starts_while_the_lease_is_not_valid(
    start_agent: Start, reader: MakeReader, topics: Topics, sdk_bootstrap: str
) -> None:
    ran: list[str] = []
    agent = start_agent(
        lambda ctx: ran.append(ctx.task_id), heartbeat_interval=0.1, heartbeat_timeout=0.6
    )
    core = agent._core
    eventually(lambda: core.lease.valid(), DEADLINE_S, "a valid lease")
    # From here no heartbeat reaches the broker, as when the agent cannot reach it.
    core._heartbeater._send = lambda beat: None  # type: ignore[union-attr]
    eventually(lambda: not core.lease.valid(), DEADLINE_S, "the lease to run out")
    t = task()
    dispatch(sdk_bootstrap, topics, agent, t)
    eventually(lambda: t.task_id in agent.status().queued, DEADLINE_S, "the task to be queued")
    status = agent.status()
    assert not status.lease_valid and ran == []
    agent.close()  # queued work is released, never started
    events = reader(topics.task_events, TaskEvent)
    events.wait_for(lambda recs: EventKind.AGENT_STOPPED in [e.kind for e in recs], "stop")
    assert kinds(events.read_to_end(), t.task_id) == [EventKind.RELEASED]
    assert ran == []


def test_sigterm_lets_the_step_in_flight_reach_its_checkpoint_and_redoes_nothing(
    start_agent: Start, reader: MakeReader, topics: Topics, sdk_bootstrap: str
) -> None:
    # The model call cannot be cut short: on a stop the step finishes, its side effect happens
    # once, and the release names its checkpoint, so the next owner starts after it.
    effects: list[int] = []
    in_call = threading.Event()
    call_done = threading.Event()

    def handler(ctx: TaskContext) -> None:
        for step in range(ctx.next_step, 5):
            if step == 1:
                in_call.set()
                call_done.wait(DEADLINE_S)
            ctx.guard()
            effects.append(step)
            ctx.progress(step, {"step": step})

    agent = start_agent(handler)  # the default handoff wait
    t = task()
    dispatch(sdk_bootstrap, topics, agent, t)
    assert in_call.wait(DEADLINE_S)
    closing = threading.Thread(target=agent.close)
    closing.start()
    eventually(lambda: agent.status().stopping, DEADLINE_S, "the stop to begin")
    call_done.set()
    closing.join(DEADLINE_S)
    events = reader(topics.task_events, TaskEvent)
    events.wait_for(lambda recs: EventKind.AGENT_STOPPED in [e.kind for e in recs], "stop")
    released = [e for e in events.read_to_end() if e.kind is EventKind.RELEASED]
    assert effects == [0, 1]  # step 1 finished, step 2 never began
    assert len(released) == 1 and released[0].checkpoint is not None
    assert released[0].checkpoint.step == 1


def test_a_step_still_running_when_the_handoff_wait_ends_is_released_and_never_acts(
    start_agent: Start, reader: MakeReader, topics: Topics, sdk_bootstrap: str
) -> None:
    effects: list[int] = []
    refused: list[BaseException] = []
    in_call = threading.Event()
    call_done = threading.Event()

    def handler(ctx: TaskContext) -> None:
        ctx.checkpoint(0, "zero")
        in_call.set()
        call_done.wait(DEADLINE_S)
        try:
            ctx.guard()
        except TaskReleased as exc:
            refused.append(exc)
            raise
        effects.append(1)

    agent = start_agent(handler, handoff_wait=0.2)
    t = task()
    dispatch(sdk_bootstrap, topics, agent, t)
    assert in_call.wait(DEADLINE_S)
    closing = threading.Thread(target=agent.close)
    closing.start()
    events = reader(topics.task_events, TaskEvent)
    events.wait_for(lambda recs: EventKind.RELEASED in kinds(recs, t.task_id), "the release")
    call_done.set()
    closing.join(DEADLINE_S)
    assert effects == [] and len(refused) == 1
    released = next(e for e in events.records if e.kind is EventKind.RELEASED)
    assert released.checkpoint is not None and released.checkpoint.step == 0


def test_a_misconfigured_fence_stops_the_agent_with_the_monitors_reason(
    agent_config: Callable[..., Any], topics: Topics, sdk_bootstrap: str
) -> None:
    agent = Agent(agent_config(), lambda ctx: None)
    agent.start()
    runner, stopped = run_in_thread(agent)
    detail = "a heartbeat interval of 2 s cannot satisfy a heartbeat timeout of 3 s"
    write(
        sdk_bootstrap,
        topics.control,
        agent.agent_id,
        fence(agent, DispatchReason.MISCONFIGURED, detail=detail),
    )
    runner.join(DEADLINE_S)
    assert not runner.is_alive()
    assert len(stopped) == 1 and isinstance(stopped[0], ConfigError)
    assert detail in str(stopped[0])
    assert agent.status().fenced


def test_status_reports_a_healthy_agent(
    start_agent: Start, topics: Topics, sdk_bootstrap: str
) -> None:
    agent = start_agent(lambda ctx: None)
    eventually(lambda: agent.status().lease_valid, DEADLINE_S, "a valid lease")
    status = agent.status()
    assert status.broker_reachable and not status.fenced and not status.stopping
    assert status.epoch == agent.epoch and status.state == "running"
    assert status.last_ack_age_s is not None and status.lease_remaining_s > 0
    assert (status.running, status.queued) == ((), ())


def test_guard_refuses_a_task_moved_to_a_newer_attempt(
    start_agent: Start, reader: MakeReader, topics: Topics, sdk_bootstrap: str
) -> None:
    # Moved away while its model call ran: FencedError at the guard, nothing more written.
    call_done = threading.Event()
    started: list[TaskContext] = []

    def handler(ctx: TaskContext) -> None:
        started.append(ctx)
        call_done.wait(DEADLINE_S)
        ctx.guard()

    agent = start_agent(handler)
    t = task()
    dispatch(sdk_bootstrap, topics, agent, t)
    eventually(lambda: started, DEADLINE_S, "the task to start")
    write(
        sdk_bootstrap,
        topics.control,
        agent.agent_id,
        Control(
            kind=ControlKind.DISPATCH,
            agent_id=agent.agent_id,
            epoch=agent.epoch,
            decision_id="m1",
            issued_at=time.time(),
            reason=DispatchReason.LATE_CLAIM,
            plan=(PlanEntry(task_id=t.task_id, attempt=2, target_agent_id="b", target_epoch=1),),
        ),
    )
    # The move reaches the running attempt while its call still runs (the handler holds the
    # task until it returns, so the agent's holdings cannot show it yet).
    eventually(lambda: started[0].fenced, DEADLINE_S, "the task to move")
    call_done.set()
    agent.close()
    events = reader(topics.task_events, TaskEvent)
    events.wait_for(lambda recs: EventKind.AGENT_STOPPED in [e.kind for e in recs], "stop")
    assert kinds(events.read_to_end(), t.task_id) == [EventKind.CLAIMED]
