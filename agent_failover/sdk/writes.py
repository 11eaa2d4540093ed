"""What one agent epoch writes: task events (keyed by the agent id) and checkpoint records.

:class:`AgentWrites` is the single way the core and its task contexts reach the record writer
once it is connected; it is also the :class:`~agent_failover.sdk.context.CheckpointSink` of
every :class:`~agent_failover.sdk.context.TaskContext` the agent builds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from agent_failover.config import Topics
from agent_failover.errors import AgentFailoverError, LifecycleError
from agent_failover.models import CheckpointRef, EventKind, TaskEvent
from agent_failover.sdk.context import TaskContext
from agent_failover.sdk.kafka import DeliveryFuture
from agent_failover.sdk.transport import RecordWriter

log = logging.getLogger(__name__)


class AgentWrites:
    """The records one epoch writes, through the writer attached at start-up.

    ``epoch`` is read at each write: the epoch is chosen only when the agent starts.
    """

    def __init__(self, topics: Topics, agent_id: str, epoch: Callable[[], int]) -> None:
        self._topics = topics
        self._agent_id = agent_id
        self._epoch = epoch
        self._writer: RecordWriter | None = None

    def attach(self, writer: RecordWriter) -> None:
        """Write through ``writer`` from now on (the agent is connected)."""
        self._writer = writer

    def send(self, topic: str, key: str, value: bytes) -> DeliveryFuture:
        """Queue one record; raises :class:`LifecycleError` before the agent is connected."""
        if self._writer is None:
            raise LifecycleError("the agent is not started")
        return self._writer.send(topic, key, value)

    def event(
        self, kind: EventKind, ctx: TaskContext | None = None, **fields: Any
    ) -> DeliveryFuture:
        """Queue a task event of this epoch (of ``ctx``'s task and attempt, if given)."""
        if ctx is not None:
            fields.setdefault("task_id", ctx.task_id)
            fields.setdefault("attempt", ctx.attempt)
        event = TaskEvent(
            kind=kind, agent_id=self._agent_id, epoch=self._epoch(), at=time.time(), **fields
        )
        return self.send(self._topics.task_events, self._agent_id, event.encode())

    def event_nowait(self, kind: EventKind, ctx: TaskContext | None = None, **fields: Any) -> None:
        """Emit without waiting; a failure is logged (the monitor then relies on timeouts)."""
        try:
            future = self.event(kind, ctx, **fields)
        except AgentFailoverError as exc:
            log.error("%s event for %s not sent: %s", kind.value, ctx, exc)
            return

        def report(f: DeliveryFuture) -> None:
            if (exc := f.exception()) is not None:
                log.error("%s event for %s lost: %s", kind.value, ctx, exc)

        future.add_done_callback(report)

    # CheckpointSink, for TaskContext
    def send_checkpoint(self, task_id: str, value: bytes) -> DeliveryFuture:
        """Queue a checkpoint record (key: task id)."""
        return self.send(self._topics.checkpoints, task_id, value)

    def checkpointed(self, ctx: TaskContext, ref: CheckpointRef) -> None:
        """Report a confirmed checkpoint."""
        self.event_nowait(EventKind.CHECKPOINTED, ctx, checkpoint=ref)
