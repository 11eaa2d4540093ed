"""Test doubles for users' own tests, without Kafka.

A handler alone, in milliseconds: a :class:`TaskContext` writing to memory
(:func:`make_context`, or :func:`resume_context` for a task resumed after a given step), and
what the monitor or a shutdown does to it (:func:`fence`, :func:`request_stop`; a fake
``clock`` drives time-based checkpoint policies)::

    from agent_failover import Task
    from agent_failover.sdk.testing import bind, make_context

    ctx, sink = make_context(Task(task_id="t1", task_type="demo"))
    with bind(ctx):
        result = my_handler(ctx)
    assert [c.step for c in sink.checkpoints] == [0, 1, 2]

A whole :class:`~agent_failover.sdk.Agent` (threads, queue, checkpoints, resume, fencing): the
:class:`MemoryTransport` keeps the topics in memory and plays the monitor::

    transport = MemoryTransport()
    with Agent(transport.config(), my_handler, transport=transport):
        assert transport.dispatch(Task(task_id="t1", task_type="demo")).result(timeout=5) == ...

The public surface is ``__all__`` (pinned by ``tests/unit/test_exports.py``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from agent_failover.config import CheckpointPolicy
from agent_failover.models import JSON, Checkpoint, CheckpointRef, Task
from agent_failover.sdk.context import Outcome, TaskContext
from agent_failover.sdk.kafka import Delivered, DeliveryFuture
from agent_failover.sdk.memory import EARLIER_AGENT, EARLIER_EPOCH, MemoryTransport

__all__ = [
    "InMemorySink",
    "MemoryTransport",
    "bind",
    "fence",
    "make_context",
    "request_stop",
    "resume_context",
]


class InMemorySink:
    """Stores checkpoints in a list (offset = index) and records ``checkpointed`` reports."""

    topic = "checkpoints"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.checkpoints: list[Checkpoint] = []
        self.reported: list[CheckpointRef] = []
        #: Set to an exception to make the next writes fail with it.
        self.fail_with: BaseException | None = None

    def send_checkpoint(self, task_id: str, value: bytes) -> DeliveryFuture:
        """Store the record at once and return a resolved future."""
        future: DeliveryFuture = concurrent.futures.Future()
        if self.fail_with is not None:
            future.set_exception(self.fail_with)
            return future
        with self._lock:
            self.checkpoints.append(Checkpoint.decode(value))
            offset = len(self.checkpoints) - 1
        future.set_result(Delivered(self.topic, 0, offset))
        return future

    def checkpointed(self, ctx: TaskContext, ref: CheckpointRef) -> None:
        """Record the report."""
        self.reported.append(ref)


def make_context(
    task: Task,
    *,
    attempt: int = 1,
    agent_id: str = "test-agent",
    epoch: int = 1,
    resume: Checkpoint | None = None,
    policy: CheckpointPolicy | None = None,
    clock: Callable[[], float] | None = None,
) -> tuple[TaskContext, InMemorySink]:
    """A context for ``task`` writing to a fresh :class:`InMemorySink`; ``resume``: the
    checkpoint it resumes from (see :func:`resume_context` to build one from a step and state).
    """
    sink = InMemorySink()
    kwargs: dict[str, Any] = {} if clock is None else {"clock": clock}
    ref = None
    if resume is not None:
        ref = CheckpointRef(
            partition=0,
            offset=0,
            step=resume.step,
            task_id=resume.task_id,
            attempt=resume.attempt,
            epoch=resume.epoch,
        )
    ctx = TaskContext(
        task=task,
        attempt=attempt,
        agent_id=agent_id,
        epoch=epoch,
        sink=sink,
        policy=policy or CheckpointPolicy(),
        resume=resume,
        resume_ref=ref,
        **kwargs,
    )
    return ctx, sink


def resume_context(
    task: Task,
    step: int,
    state: JSON,
    *,
    attempt: int = 2,
    agent_id: str = "test-agent",
    epoch: int = 1,
    policy: CheckpointPolicy | None = None,
    clock: Callable[[], float] | None = None,
) -> tuple[TaskContext, InMemorySink]:
    """A context for ``task`` resumed after ``step`` with ``state``, as a failover hands it over:
    ``ctx.next_step == step + 1``, ``ctx.state == state``; the checkpoint is an earlier
    attempt's (``attempt - 1``)."""
    resume = Checkpoint(
        task_id=task.task_id,
        attempt=attempt - 1,
        agent_id=EARLIER_AGENT,
        epoch=EARLIER_EPOCH,
        step=step,
        state=state,
        written_at=0.0,
    )
    return make_context(
        task,
        attempt=attempt,
        agent_id=agent_id,
        epoch=epoch,
        resume=resume,
        policy=policy,
        clock=clock,
    )


@contextlib.contextmanager
def bind(ctx: TaskContext) -> Iterator[TaskContext]:
    """Make ``ctx`` what :func:`~agent_failover.sdk.current_task` returns inside the block."""
    with ctx._bound():
        yield ctx


def fence(ctx: TaskContext) -> None:
    """Simulate the monitor fencing this agent's epoch: later writes raise FencedError."""
    ctx._settle(Outcome.FENCED)


def request_stop(ctx: TaskContext) -> None:
    """Simulate a graceful shutdown: ``ctx.stopping`` turns true, writes raise TaskReleased."""
    ctx._request_stop()
