"""TaskContext without Kafka, through the in-package test double."""

from __future__ import annotations

import asyncio
import concurrent.futures

import pytest

from agent_failover.config import CheckpointPolicy
from agent_failover.errors import BrokerError, CodecError, FencedError, LifecycleError
from agent_failover.models import Checkpoint, Task
from agent_failover.sdk import TaskReleased, current_task
from agent_failover.sdk.context import TaskContext
from agent_failover.sdk.kafka import Delivered, DeliveryFuture
from agent_failover.sdk.testing import (
    InMemorySink,
    bind,
    fence,
    make_context,
    request_stop,
    resume_context,
)

TASK = Task(task_id="t1", task_type="demo", payload={"n": 3})


def resumed(step: int, state: object) -> Checkpoint:
    return Checkpoint(
        task_id="t1", attempt=1, agent_id="old", epoch=1, step=step, state=state, written_at=0.0
    )


def test_fresh_attempt_starts_at_step_zero() -> None:
    ctx, _ = make_context(TASK)
    assert (ctx.next_step, ctx.state, ctx.resume, ctx.attempt) == (0, None, None, 1)
    assert not ctx.fenced and not ctx.stopping


def test_resumed_attempt_continues_after_the_checkpoint() -> None:
    ctx, _ = make_context(TASK, attempt=2, resume=resumed(4, {"acc": 10}))
    assert (ctx.next_step, ctx.state, ctx.attempt) == (5, {"acc": 10}, 2)


def test_a_resumed_context_needs_only_the_step_and_the_state() -> None:
    ctx, sink = resume_context(TASK, 4, {"acc": 10})
    assert (ctx.next_step, ctx.state, ctx.attempt, ctx.resume.attempt) == (5, {"acc": 10}, 2, 1)
    ctx.checkpoint(5, {"acc": 15})
    request_stop(ctx)
    assert ctx._release_ref() == sink.reported[0]  # its own checkpoint, once it wrote one
    later, _ = resume_context(TASK, 0, None, attempt=3)
    assert later._release_ref() is not None and later._release_ref().attempt == 2


def test_checkpoint_returns_the_offset_and_reports_it() -> None:
    ctx, sink = make_context(TASK, agent_id="a", epoch=7)
    assert [ctx.checkpoint(s, {"s": s}) for s in range(3)] == [0, 1, 2]
    assert [(c.step, c.state, c.agent_id, c.epoch, c.attempt) for c in sink.checkpoints] == [
        (s, {"s": s}, "a", 7, 1) for s in range(3)
    ]
    assert [r.step for r in sink.reported] == [0, 1, 2]
    assert ctx.last_checkpoint is not None and ctx.last_checkpoint.offset == 2


def test_checkpoint_after_fence_raises_and_writes_nothing() -> None:
    ctx, sink = make_context(TASK)
    ctx.checkpoint(0, None)
    fence(ctx)
    assert ctx.fenced and ctx.stopping
    with pytest.raises(FencedError):
        ctx.checkpoint(1, None)
    with pytest.raises(FencedError):
        ctx.progress(1, None)
    with pytest.raises(FencedError):
        ctx.raise_if_fenced()
    assert [c.step for c in sink.checkpoints] == [0]


def test_stopping_writes_then_raises_task_released() -> None:
    ctx, sink = make_context(TASK)
    request_stop(ctx)
    assert ctx.stopping and not ctx.fenced
    with pytest.raises(TaskReleased):
        ctx.checkpoint(0, "s0")
    with pytest.raises(TaskReleased):
        ctx.raise_if_stopping()
    assert [c.step for c in sink.checkpoints] == [0]


def test_progress_follows_the_policy() -> None:
    now = [100.0]
    ctx, sink = make_context(TASK, policy=CheckpointPolicy.every(5.0), clock=lambda: now[0])
    assert ctx.progress(0, "a") is None
    now[0] += 5.0
    assert ctx.progress(1, "b") == 0
    assert ctx.progress(2, "c") is None
    assert [c.step for c in sink.checkpoints] == [1]
    assert ctx._unwritten_progress() == (2, "c")


def test_on_demand_progress_is_kept_for_the_final_checkpoint() -> None:
    ctx, sink = make_context(TASK, policy=CheckpointPolicy.on_demand())
    assert ctx.progress(0, "a") is None
    assert ctx._unwritten_progress() == (0, "a")
    ctx._write_final(10.0)
    assert [(c.step, c.state) for c in sink.checkpoints] == [(0, "a")]
    assert ctx._unwritten_progress() is None
    ref = ctx._release_ref()
    assert ref is not None and ref.step == 0


def test_release_ref_falls_back_to_the_resumed_checkpoint() -> None:
    ctx, _ = make_context(TASK, attempt=2, resume=resumed(3, None))
    ref = ctx._release_ref()
    assert ref is not None and ref.step == 3


def test_progress_while_stopping_writes_it_and_releases() -> None:
    ctx, sink = make_context(TASK, policy=CheckpointPolicy.on_demand())
    request_stop(ctx)
    with pytest.raises(TaskReleased):
        ctx.progress(5, "x")
    assert [c.step for c in sink.checkpoints] == [5]


def test_state_that_is_not_json_is_a_codec_error() -> None:
    ctx, _ = make_context(TASK)
    with pytest.raises(CodecError):
        ctx.checkpoint(0, object())


@pytest.mark.parametrize("step", [-1, True, 1.0, "1"])
def test_a_step_the_schema_refuses_is_a_codec_error_and_writes_nothing(step: object) -> None:
    ctx, sink = make_context(TASK)
    with pytest.raises(CodecError, match="step must be an int >= 0") as raised:
        ctx.checkpoint(step, None)  # type: ignore[arg-type]
    assert isinstance(raised.value, ValueError) and raised.value.record_type == "checkpoint"
    assert sink.checkpoints == []


def test_on_demand_progress_checks_the_step_at_once() -> None:
    ctx, sink = make_context(TASK, policy=CheckpointPolicy.on_demand())
    with pytest.raises(CodecError):
        ctx.progress(-1, "x")
    assert ctx._unwritten_progress() is None  # nothing left for the final checkpoint to refuse
    assert sink.checkpoints == []


def test_write_failure_is_a_broker_error() -> None:
    ctx, sink = make_context(TASK)
    sink.fail_with = BrokerError("down")
    with pytest.raises(BrokerError):
        ctx.checkpoint(0, None)


def test_current_task_inside_and_outside() -> None:
    ctx, _ = make_context(TASK)
    with pytest.raises(LifecycleError):
        current_task()
    with bind(ctx):
        assert current_task() is ctx
    with pytest.raises(LifecycleError):
        current_task()


def test_async_checkpoint_and_progress() -> None:
    ctx, sink = make_context(TASK)

    async def handler() -> list[int | None]:
        with bind(ctx):
            first = await current_task().acheckpoint(0, "a")
            second = await ctx.aprogress(1, "b")
        return [first, second]

    assert asyncio.run(handler()) == [0, 1]
    assert [c.step for c in sink.checkpoints] == [0, 1]


def test_cancelled_async_checkpoint_leaves_the_write_to_the_producer() -> None:
    # The producer's delivery thread resolves the write's future later; cancelling the handler
    # must not cancel that future, or resolving it raises in the delivery thread.
    write: DeliveryFuture = concurrent.futures.Future()

    class PendingSink(InMemorySink):
        queued = asyncio.Event()

        def send_checkpoint(self, task_id: str, value: bytes) -> DeliveryFuture:
            self.queued.set()
            return write

    sink = PendingSink()
    ctx = TaskContext(
        task=TASK, attempt=1, agent_id="a", epoch=1, sink=sink, policy=CheckpointPolicy()
    )

    async def cancel_mid_write() -> None:
        handler = asyncio.create_task(ctx.acheckpoint(0, "s"))
        await sink.queued.wait()
        handler.cancel()
        with pytest.raises(asyncio.CancelledError):
            await handler

    asyncio.run(cancel_mid_write())
    assert not write.cancelled()
    write.set_result(Delivered("checkpoints", 0, 0))  # what the delivery thread does
