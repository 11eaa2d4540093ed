"""Handing tasks back: a released task's final checkpoint, and the graceful stop's handoff.

A task goes back to the monitor with a ``released`` event naming its latest checkpoint, so that
it moves at once instead of after a heartbeat timeout. A handler releases its own task
(:class:`~agent_failover.errors.TaskReleased`); the graceful stop gives handlers ``handoff_wait``
to reach a checkpoint and do so, then releases every task still running or queued. A fenced
epoch releases nothing: it may write nothing more, and the monitor moves its tasks itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from agent_failover.errors import AgentFailoverError
from agent_failover.models import EventKind
from agent_failover.sdk.context import Outcome, TaskContext
from agent_failover.sdk.holdings import Holdings
from agent_failover.sdk.writes import AgentWrites

log = logging.getLogger(__name__)


class Handoff:
    """Releases the tasks of one epoch; ``close_timeout`` bounds each wait for the broker and
    for handlers, ``handoff_wait`` the time handlers get to stop on their own."""

    def __init__(
        self,
        holdings: Holdings,
        writes: AgentWrites,
        *,
        close_timeout: float,
        handoff_wait: float,
    ) -> None:
        self._holdings = holdings
        self._writes = writes
        self._close_timeout = close_timeout
        self._handoff_wait = handoff_wait

    def release(self, ctx: TaskContext) -> None:
        """Hand a running task back: final checkpoint of unwritten progress, then ``released``."""
        if ctx._outcome is not None:
            return
        try:
            ctx._write_final(self._close_timeout)
        except AgentFailoverError as exc:
            log.warning(
                "task %s: final checkpoint failed (%s); releasing the last one", ctx.task_id, exc
            )
        if ctx._settle(Outcome.RELEASED):
            self._writes.event_nowait(
                EventKind.RELEASED, ctx, task=ctx.task, checkpoint=ctx._release_ref()
            )
            log.info("task %s attempt %d released", ctx.task_id, ctx.attempt)

    def hand_off(self, stop_starting: Callable[[], None]) -> None:
        """The graceful stop's part for tasks: let handlers stop, release what is left, wait.

        Asks every running handler to stop (they see ``ctx.stopping``) and gives them
        ``handoff_wait``; then stops starting work (``stop_starting``: a task being started is
        running or queued again afterwards), releases the rest and waits up to
        ``close_timeout`` for their handlers to return.
        """
        holdings = self._holdings
        for ctx in holdings.running_now():
            ctx._request_stop()
        # Handlers that reach a checkpoint within handoff_wait hand their task back themselves
        # (TaskReleased); the rest are released from here, so their tasks move at once.
        holdings.wait_idle(min(self._handoff_wait, self._close_timeout))
        stop_starting()
        self._release_all()
        # Released handlers stop at their next SDK call (TaskReleased): let them finish cleanly.
        holdings.wait_idle(self._close_timeout)

    def _release_all(self) -> None:
        """Release every task still running or queued here (unless fenced: nothing more then)."""
        holdings = self._holdings
        with holdings.lock:
            running = list(holdings.running.values())
            pending = holdings.queue.take_all()
        if holdings.fence is not None:
            return
        for ctx in running:
            if ctx._outcome is None:
                log.info("task %s still running at close: releasing it", ctx.task_id)
                ctx._request_stop()
                self.release(ctx)
        for record in pending:
            self._writes.event_nowait(
                EventKind.RELEASED,
                task_id=record.task_id,
                attempt=record.attempt,
                task=record.task,
                checkpoint=record.checkpoint,
            )
