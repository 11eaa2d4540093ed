"""The synchronous Agent against a real broker: heartbeats, dispatches, checkpoints, failover
paths. Work arrives as the monitor sends it (:func:`~tests.sdk.conftest.dispatch`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from agent_failover.config import CheckpointPolicy, KafkaConfig, Topics
from agent_failover.dev.waiting import eventually
from agent_failover.errors import FencedError
from agent_failover.models import (
    Checkpoint,
    CheckpointRef,
    Control,
    ControlKind,
    DispatchReason,
    EventKind,
    Heartbeat,
    PlanEntry,
    Redispatch,
    Task,
    TaskEvent,
)
from agent_failover.sdk import Agent, TaskContext, TaskReleased, current_task
from agent_failover.sdk.checkpoint import CheckpointReader
from agent_failover.sdk.kafka import assigned_consumer_conf

from .conftest import DEADLINE_S, MakeReader, Start, dispatch, run_in_thread, task, write

pytestmark = pytest.mark.broker


def same_task(got: Task | None, sent: Task) -> bool:
    """The same task (a submitter stamps ``submitted_at``)."""
    return got is not None and (got.task_id, got.task_type, got.payload) == (
        sent.task_id,
        sent.task_type,
        sent.payload,
    )


def task_events(events: list[TaskEvent], task_id: str) -> list[EventKind]:
    return [e.kind for e in events if e.task_id == task_id]


def wait_gate(ctx: TaskContext, gate: threading.Event) -> None:
    """Block a handler until the test opens ``gate`` or the agent asks it to stop."""
    while not gate.wait(0.01) and not ctx.stopping:
        pass


def test_heartbeats_arrive_with_increasing_seq(
    start_agent: Start, reader: MakeReader, topics: Topics
) -> None:
    agent = start_agent(lambda ctx: None, capacity=3)
    beats = reader(topics.heartbeats, Heartbeat)

    def mine(recs: list[Heartbeat]) -> list[Heartbeat]:
        return [b for b in recs if b.agent_id == agent.agent_id]

    beats.wait_for(lambda recs: len(mine(recs)) >= 3, "three heartbeats")
    got = mine(beats.records)
    assert {b.epoch for b in got} == {agent.epoch}
    assert [b.seq for b in got][:3] == [0, 1, 2]
    assert all(b.capacity == 3 and b.interval_s == 0.2 and not b.draining for b in got)


def test_dispatched_task_is_claimed_checkpointed_and_completed(
    start_agent: Start, reader: MakeReader, topics: Topics, sdk_bootstrap: str
) -> None:
    offsets: list[int] = []

    def handler(ctx: TaskContext) -> str:
        assert current_task() is ctx
        for step in range(ctx.next_step, 3):
            offsets.append(ctx.checkpoint(step, {"done": step}))
        return "ok"

    agent = start_agent(handler)
    t = task()
    dispatch(sdk_bootstrap, topics, agent, t)
    events = reader(topics.task_events, TaskEvent)
    events.wait_for(
        lambda recs: EventKind.COMPLETED in task_events(recs, t.task_id), "the task to complete"
    )
    assert task_events(events.records, t.task_id) == [
        EventKind.CLAIMED,
        *[EventKind.CHECKPOINTED] * 3,
        EventKind.COMPLETED,
    ]
    mine = [e for e in events.records if e.task_id == t.task_id]
    assert all(e.agent_id == agent.agent_id and e.epoch == agent.epoch for e in mine)
    assert all(e.attempt == 1 for e in mine)
    assert same_task(mine[0].task, t)
    # Every returned offset holds the checkpoint the event reports.
    refs = [e.checkpoint for e in mine if e.kind is EventKind.CHECKPOINTED]
    assert [r.offset for r in refs if r is not None] == offsets
    kafka = KafkaConfig(sdk_bootstrap)
    reader_ = CheckpointReader(
        assigned_consumer_conf(kafka, "sdk-test", 10), topics.checkpoints, kafka.signer
    )
    try:
        for ref in refs:
            assert ref is not None
            record = reader_.read(ref, t.task_id)
            assert record is not None
            assert (record.step, record.state, record.epoch) == (
                ref.step,
                {"done": ref.step},
                agent.epoch,
            )
    finally:
        reader_.close()


def test_failed_handler_reports_the_error(
    start_agent: Start, reader: MakeReader, topics: Topics, sdk_bootstrap: str
) -> None:
    def handler(ctx: TaskContext) -> None:
        raise ValueError("bad input")

    agent = start_agent(handler)
    t = task()
    dispatch(sdk_bootstrap, topics, agent, t)
    events = reader(topics.task_events, TaskEvent)
    events.wait_for(lambda recs: EventKind.FAILED in task_events(recs, t.task_id), "failure")
    failed = [e for e in events.records if e.task_id == t.task_id and e.kind is EventKind.FAILED]
    assert failed[0].error == "ValueError: bad input"


def test_queued_failover_work_starts_before_queued_new_work_and_resumes_from_its_checkpoint(
    start_agent: Start, reader: MakeReader, topics: Topics, sdk_bootstrap: str
) -> None:
    gate = threading.Event()
    seen: dict[str, tuple[int, int, object]] = {}

    def handler(ctx: TaskContext) -> None:
        seen[ctx.task_id] = (ctx.attempt, ctx.next_step, ctx.state)
        if ctx.task.payload.get("block"):
            wait_gate(ctx, gate)

    agent = start_agent(handler, capacity=1)
    blocker, normal, moved = task(block=True), task(), task("moved")
    events = reader(topics.task_events, TaskEvent)
    beats = reader(topics.heartbeats, Heartbeat)
    dispatch(sdk_bootstrap, topics, agent, blocker)
    events.wait_for(
        lambda recs: EventKind.CLAIMED in task_events(recs, blocker.task_id), "blocker claim"
    )
    # Both arrive while the only slot is taken: new work first, then a failover.
    dispatch(sdk_bootstrap, topics, agent, normal)
    eventually(lambda: normal.task_id in agent.in_flight(), DEADLINE_S, "new work to be queued")
    # The dead agent's checkpoint, then the monitor's redispatch naming it.
    old = Checkpoint(
        task_id="moved",
        attempt=1,
        agent_id="dead",
        epoch=1,
        step=4,
        state={"acc": 42},
        written_at=time.time(),
    )
    partition, offset = write(sdk_bootstrap, topics.checkpoints, "moved", old)
    write(
        sdk_bootstrap,
        topics.priority,
        agent.agent_id,
        Redispatch(
            task=moved,
            attempt=2,
            target_agent_id=agent.agent_id,
            target_epoch=agent.epoch,
            reason=DispatchReason.HEARTBEAT_TIMEOUT,
            from_agent_id="dead",
            from_epoch=1,
            decision_id="d1",
            dispatched_at=time.time(),
            checkpoint=CheckpointRef(
                partition=partition, offset=offset, step=4, task_id="moved", attempt=1, epoch=1
            ),
        ),
    )
    eventually(lambda: "moved" in agent.in_flight(), DEADLINE_S, "the redispatch to be queued")
    # Queued work is in the heartbeat, so that no monitor worker counts the slots as free.
    beats.wait_for(
        lambda recs: any({normal.task_id, "moved"} <= set(b.in_flight) for b in recs),
        "a heartbeat listing the queued tasks",
    )
    gate.set()
    events.wait_for(
        lambda recs: EventKind.COMPLETED in task_events(recs, normal.task_id), "the normal task"
    )
    claims = [e.task_id for e in events.records if e.kind is EventKind.CLAIMED]
    assert claims == [blocker.task_id, "moved", normal.task_id]
    assert seen["moved"] == (2, 5, {"acc": 42})
    moved_events = [e for e in events.records if e.task_id == "moved"]
    assert [e.kind for e in moved_events] == [EventKind.CLAIMED, EventKind.COMPLETED]
    assert all(e.attempt == 2 for e in moved_events)


def test_duplicate_and_foreign_redispatches_are_ignored(
    start_agent: Start, reader: MakeReader, topics: Topics, sdk_bootstrap: str
) -> None:
    runs: list[tuple[str, int]] = []
    agent = start_agent(lambda ctx: runs.append((ctx.task_id, ctx.attempt)))

    def redispatch(task_id: str, epoch: int) -> Redispatch:
        return Redispatch(
            task=task(task_id),
            attempt=2,
            target_agent_id=agent.agent_id,
            target_epoch=epoch,
            reason=DispatchReason.RELEASED,
            from_agent_id="x",
            from_epoch=1,
            decision_id="d",
            dispatched_at=time.time(),
        )

    for rec in (
        redispatch("old-epoch", agent.epoch - 1),
        redispatch("dup", agent.epoch),
        redispatch("dup", agent.epoch),
        redispatch("last", agent.epoch),
    ):
        write(sdk_bootstrap, topics.priority, agent.agent_id, rec)
    events = reader(topics.task_events, TaskEvent)
    events.wait_for(lambda recs: EventKind.COMPLETED in task_events(recs, "last"), "last")
    assert runs == [("dup", 2), ("last", 2)]


def test_fence_stops_the_task_and_nothing_more_is_written(
    agent_config: Callable[..., Any], reader: MakeReader, topics: Topics, sdk_bootstrap: str
) -> None:
    outcome: list[BaseException] = []

    def handler(ctx: TaskContext) -> str:
        ctx.checkpoint(0, "first")
        wait_gate(ctx, threading.Event())  # until fenced
        try:
            ctx.checkpoint(1, "after fence")
        except FencedError as exc:
            outcome.append(exc)
        return "would be completed"

    agent = Agent(agent_config(), handler)
    agent.start()
    runner, stopped = run_in_thread(agent)
    t = task()
    dispatch(sdk_bootstrap, topics, agent, t)
    events = reader(topics.task_events, TaskEvent)
    events.wait_for(lambda recs: EventKind.CHECKPOINTED in task_events(recs, t.task_id), "step 0")
    write(
        sdk_bootstrap,
        topics.control,
        agent.agent_id,
        Control(
            kind=ControlKind.FENCE,
            agent_id=agent.agent_id,
            epoch=agent.epoch,
            decision_id="f1",
            issued_at=time.time(),
            reason=DispatchReason.HEARTBEAT_TIMEOUT,
            plan=(PlanEntry(task_id=t.task_id, attempt=2),),
        ),
    )
    runner.join(DEADLINE_S)
    assert not runner.is_alive()
    assert len(stopped) == 1 and isinstance(stopped[0], FencedError)
    assert len(outcome) == 1 and agent.fenced
    # Read everything written since, to the end: the agent's own flush at close has completed.
    checkpoints = reader(topics.checkpoints, Checkpoint)
    assert [c.step for c in checkpoints.read_to_end()] == [0]
    events.read_to_end()
    assert task_events(events.records, t.task_id) == [
        EventKind.CLAIMED,
        EventKind.CHECKPOINTED,
    ]
    assert EventKind.AGENT_STOPPED not in [e.kind for e in events.records]


def test_a_plan_moving_a_running_task_stops_it(
    start_agent: Start, reader: MakeReader, topics: Topics, sdk_bootstrap: str
) -> None:
    outcome: list[BaseException] = []

    def handler(ctx: TaskContext) -> None:
        wait_gate(ctx, threading.Event())
        try:
            ctx.checkpoint(0, None)
        except FencedError as exc:
            outcome.append(exc)

    agent = start_agent(handler)
    t = task()
    dispatch(sdk_bootstrap, topics, agent, t)
    eventually(lambda: t.task_id in agent.in_flight(), DEADLINE_S, "the claim")
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
    eventually(lambda: t.task_id not in agent.in_flight(), DEADLINE_S, "the task to stop")
    assert len(outcome) == 1 and not agent.fenced
    events = reader(topics.task_events, TaskEvent)
    events.wait_for(lambda recs: EventKind.CLAIMED in task_events(recs, t.task_id), "claimed")
    agent.close()
    events.read_to_end()
    assert task_events(events.records, t.task_id) == [EventKind.CLAIMED]


def test_close_releases_in_flight_tasks_with_their_checkpoint(
    start_agent: Start, reader: MakeReader, topics: Topics, sdk_bootstrap: str
) -> None:
    def handler(ctx: TaskContext) -> None:
        ctx.checkpoint(0, "zero")
        ctx.progress(1, "one")  # on demand: kept, written at release
        wait_gate(ctx, threading.Event())
        ctx.raise_if_stopping()

    agent = start_agent(handler, checkpoint_policy=CheckpointPolicy.on_demand())
    t = task()
    dispatch(sdk_bootstrap, topics, agent, t)
    events = reader(topics.task_events, TaskEvent)
    events.wait_for(lambda recs: EventKind.CHECKPOINTED in task_events(recs, t.task_id), "step 0")
    agent.close()
    events.wait_for(lambda recs: EventKind.AGENT_STOPPED in [e.kind for e in recs], "agent_stopped")
    events.read_to_end()  # nothing may follow agent_stopped
    assert task_events(events.records, t.task_id) == [
        EventKind.CLAIMED,
        EventKind.CHECKPOINTED,
        EventKind.CHECKPOINTED,
        EventKind.RELEASED,
    ]
    released = next(e for e in events.records if e.kind is EventKind.RELEASED)
    assert same_task(released.task, t)
    assert released.checkpoint is not None and released.checkpoint.step == 1
    assert [e.kind for e in events.records][-1] is EventKind.AGENT_STOPPED
    checkpoints = reader(topics.checkpoints, Checkpoint)
    checkpoints.wait_for(lambda recs: len(recs) >= 2, "both checkpoints")
    where = dict(zip(checkpoints.positions, checkpoints.records, strict=True))
    final = where[(released.checkpoint.partition, released.checkpoint.offset)]
    assert (final.step, final.state) == (1, "one")


def test_close_releases_a_handler_that_ignores_the_stop(
    start_agent: Start, reader: MakeReader, topics: Topics, sdk_bootstrap: str
) -> None:
    gate = threading.Event()
    late: list[BaseException] = []

    def handler(ctx: TaskContext) -> None:
        ctx.checkpoint(0, "zero")
        gate.wait(DEADLINE_S)  # deaf to ctx.stopping
        try:
            ctx.checkpoint(1, "too late")
        except TaskReleased as exc:
            late.append(exc)

    agent = start_agent(handler, close_timeout=1.0)
    t = task()
    dispatch(sdk_bootstrap, topics, agent, t)
    events = reader(topics.task_events, TaskEvent)
    events.wait_for(lambda recs: EventKind.CHECKPOINTED in task_events(recs, t.task_id), "step 0")
    agent.close()
    gate.set()
    eventually(lambda: bool(late), DEADLINE_S, "the late checkpoint to be refused")
    events.wait_for(lambda recs: EventKind.AGENT_STOPPED in [e.kind for e in recs], "stop")
    kinds = task_events(events.read_to_end(), t.task_id)
    assert kinds[-1] is EventKind.RELEASED and EventKind.COMPLETED not in kinds


def test_handoff_wait_lets_a_handler_reach_its_next_checkpoint(
    start_agent: Start, reader: MakeReader, topics: Topics, sdk_bootstrap: str
) -> None:
    # With a handoff wait, the step in progress is finished and checkpointed by its own handler
    # before the task moves; the release then names that checkpoint, not the previous one.
    started = threading.Event()

    def handler(ctx: TaskContext) -> None:
        ctx.checkpoint(0, "zero")
        started.set()
        eventually(lambda: ctx.stopping, DEADLINE_S, "the agent to stop")
        ctx.progress(1, "finished during the handoff wait")  # writes, then raises TaskReleased

    agent = start_agent(handler, handoff_wait=DEADLINE_S)
    t = task()
    dispatch(sdk_bootstrap, topics, agent, t)
    eventually(started.is_set, DEADLINE_S, "step 0")
    agent.close()
    events = reader(topics.task_events, TaskEvent)
    events.wait_for(lambda recs: EventKind.AGENT_STOPPED in [e.kind for e in recs], "stop")
    released = next(e for e in events.records if e.kind is EventKind.RELEASED)
    assert released.checkpoint is not None and released.checkpoint.step == 1
