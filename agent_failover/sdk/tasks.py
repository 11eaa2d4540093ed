"""Running dispatched tasks: taking a slot, starting the handler, reporting how it ended.

The starter thread (:class:`~agent_failover.sdk.intake.Starter`) asks :class:`TaskRunner` for the
next queued dispatch while a slot is free and the lease is valid, then starts it: the checkpoint
it resumes from is read, ``claimed`` announced and the handler launched by the front. The front
reports the handler's end through :meth:`TaskRunner.task_done`: ``completed`` with its result,
``failed``, or the task handed back (:mod:`agent_failover.sdk.handoff`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from agent_failover.config import AgentConfig
from agent_failover.errors import CodecError, FencedError, TaskReleased
from agent_failover.models import EventKind, Redispatch, Task, plain_result
from agent_failover.sdk.admission import Admission
from agent_failover.sdk.context import Outcome, TaskContext
from agent_failover.sdk.handoff import Handoff
from agent_failover.sdk.holdings import Holdings
from agent_failover.sdk.lease import Lease
from agent_failover.sdk.transport import CheckpointSource
from agent_failover.sdk.writes import AgentWrites

log = logging.getLogger(__name__)

#: What a front supplies: run the handler of a context somewhere, then call ``task_done``.
Launch = Callable[[TaskContext], None]


class TaskRunner:
    """Starts the tasks of one epoch and reports their ends (the starter's ``StartHost``).

    ``taking`` tells whether the agent takes work at all (running, not fenced, not stopping);
    ``fail`` stops the agent when the starter thread dies.
    """

    def __init__(
        self,
        config: AgentConfig,
        holdings: Holdings,
        *,
        lease: Lease,
        admission: Admission,
        writes: AgentWrites,
        handoff: Handoff,
        launch: Launch,
        taking: Callable[[], bool],
        epoch: Callable[[], int],
        fail: Callable[[BaseException], None],
    ) -> None:
        self._config = config
        self._holdings = holdings
        self._lease = lease
        self._admission = admission
        self._writes = writes
        self._handoff = handoff
        self._launch = launch
        self._taking = taking
        self._epoch = epoch
        self._fail = fail
        #: Reads the checkpoint a dispatch resumes from; given once the agent is connected.
        self.reader: CheckpointSource | None = None

    # --- the starter's hooks (StartHost) ----------------------------------------------------

    def next_start_locked(self) -> Redispatch | None:
        """The next queued dispatch, its slot held, if one may start now (lock held)."""
        holdings = self._holdings
        if not (self._taking() and holdings.has_room_locked() and self._lease.valid()):
            return None
        record = holdings.queue.pop()
        if record is not None:
            holdings.starting += 1
        return record

    def start_task(self, record: Redispatch) -> None:
        """Start a dispatched task: read its checkpoint, announce ``claimed``, launch it."""
        assert self.reader is not None
        holdings = self._holdings
        try:
            resume = None
            if record.checkpoint is not None:
                resume = self.reader.read(record.checkpoint, record.task_id)
            ctx = self._context(
                record.task, record.attempt, resume=resume, resume_ref=record.checkpoint
            )
        except BaseException:
            with holdings.lock:
                holdings.starting -= 1
            raise
        with holdings.lock:
            holdings.starting -= 1
            if holdings.moved.get(record.task_id, 0) > record.attempt or holdings.fence is not None:
                return
            if not (self._taking() and self._lease.valid()):
                # Stopping: close() releases it. Lease lost meanwhile: it starts once renewed.
                holdings.queue.push_front(record)
                return
            holdings.running[(ctx.task_id, ctx.attempt)] = ctx
        self._writes.event_nowait(EventKind.CLAIMED, ctx, task=record.task)
        log.info("task %s attempt %d starts at step %d", ctx.task_id, ctx.attempt, ctx.next_step)
        self._run(ctx)

    def fail(self, exc: BaseException) -> None:
        """The starter thread died: stop the agent."""
        self._fail(exc)

    # --- running tasks ----------------------------------------------------------------------

    def _context(self, task: Task, attempt: int, **resume: Any) -> TaskContext:
        return TaskContext(
            task=task,
            attempt=attempt,
            agent_id=self._config.agent_id,
            epoch=self._epoch(),
            sink=self._writes,
            policy=self._config.checkpoint_policy,
            gate=self._admission,
            **resume,
        )

    def _run(self, ctx: TaskContext) -> None:
        try:
            self._launch(ctx)
        except Exception as exc:
            self.task_done(ctx, exc)

    def task_done(self, ctx: TaskContext, exc: BaseException | None, result: Any = None) -> None:
        """The handler of ``ctx`` returned ``result`` (``exc`` None) or raised; report it and
        free the slot.

        The result goes out on ``completed``; one that is not JSON or is over
        :data:`~agent_failover.models.MAX_RESULT_BYTES` fails the attempt instead, saying why.
        May block until the broker confirms a final checkpoint (when the handler released the
        task), so fronts call it off any event loop.
        """
        try:
            if exc is None:
                try:
                    result = plain_result(result)
                except CodecError as bad:
                    exc = bad
            if exc is None:
                if ctx._settle(Outcome.COMPLETED):
                    self._writes.event_nowait(EventKind.COMPLETED, ctx, result=result)
            elif isinstance(exc, TaskReleased) or ctx._lease_lost:
                # A handler that gave up waiting for the lease hands the task back: if the epoch
                # was fenced the monitor ignores the release, otherwise the task moves at once.
                self._handoff.release(ctx)
            elif isinstance(exc, FencedError) and ctx.fenced:
                pass  # nothing more may be written for it
            elif ctx._settle(Outcome.FAILED):
                log.warning("task %s attempt %d failed: %r", ctx.task_id, ctx.attempt, exc)
                self._writes.event_nowait(
                    EventKind.FAILED, ctx, error=f"{type(exc).__name__}: {exc}"[:4096]
                )
        finally:
            with self._holdings.lock:
                self._holdings.running.pop((ctx.task_id, ctx.attempt), None)
                self._holdings.changed.notify_all()
            ctx._done.set()
