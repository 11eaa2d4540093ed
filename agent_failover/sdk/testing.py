"""Test doubles for users' own handler tests: a :class:`TaskContext` without Kafka.

::

    from agent_failover import Task
    from agent_failover.sdk.testing import bind, make_context

    ctx, sink = make_context(Task(task_id="t1", task_type="demo"))
    with bind(ctx):
        my_handler(ctx)
    assert [c.step for c in sink.checkpoints] == [0, 1, 2]
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from agent_failover.config import CheckpointPolicy
from agent_failover.models import Checkpoint, CheckpointRef, Task
from agent_failover.sdk.context import Outcome, TaskContext
from agent_failover.sdk.kafka import Delivered, DeliveryFuture


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
    """A context for ``task`` writing to a fresh :class:`InMemorySink`."""
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
