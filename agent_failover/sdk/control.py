"""Acting on what the monitor tells one agent epoch: fences, moves, drains, promotions, dispatches.

The listener thread (:class:`~agent_failover.sdk.intake.Listener`) decodes the records of the
agent's own partitions of ``control`` and ``tasks.priority`` and hands them to a
:class:`ControlHandler`, which changes what the epoch holds (:mod:`agent_failover.sdk.holdings`)
and its standing in the fleet (pool, draining), as its heartbeats then report.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from agent_failover.models import Control, Pool, Redispatch
from agent_failover.sdk.context import Outcome
from agent_failover.sdk.holdings import Holdings
from agent_failover.sdk.intake import RedispatchFilter, interpret_control

log = logging.getLogger(__name__)


class ControlHandler:
    """The listener's hooks for one epoch.

    ``on_fenced`` runs once, after the first fence was applied (the tasks stopped): the core
    stops the heartbeat, so that a fenced epoch does not look alive, and stops the agent.
    """

    def __init__(
        self,
        holdings: Holdings,
        *,
        agent_id: str,
        pool: Pool,
        on_fenced: Callable[[], None],
    ) -> None:
        self._holdings = holdings
        self._agent_id = agent_id
        self._on_fenced = on_fenced
        self._epoch: int | None = None
        self._filter: RedispatchFilter | None = None
        #: The pool this agent serves now (the monitor may promote a standby).
        self.pool = pool
        #: True once the monitor asked this epoch to drain: it takes no new work.
        self.draining = False

    def begin(self, epoch: int) -> None:
        """The epoch was chosen: from now on, records are read for it."""
        self._epoch = epoch
        self._filter = RedispatchFilter(self._agent_id, epoch)

    def on_control(self, record: Control) -> None:
        """Apply a control record of the agent's partition (it may be for another agent)."""
        assert self._epoch is not None
        actions = interpret_control(record, self._agent_id, self._epoch, self._holdings.held())
        for task_id, attempt in actions.moved:
            self._move_away(task_id, attempt)
        if actions.fence:
            self._on_fence(record)
        if actions.drain and not self.draining:
            log.info(
                "drain requested (%s): finishing current tasks, taking no new ones",
                record.decision_id,
            )
            self.draining = True
        if actions.promote and self.pool is Pool.STANDBY:
            log.info("promoted to the active pool (%s)", record.decision_id)
            self.pool = Pool.ACTIVE  # the monitor sends new work once heartbeats say so

    def on_redispatch(self, record: Redispatch) -> None:
        """Queue a dispatch addressed to this epoch (once; never after a fence or a move)."""
        assert self._filter is not None
        if not self._filter.accept(record):
            return
        holdings = self._holdings
        with holdings.lock:
            if holdings.fence is not None or holdings.moved.get(record.task_id, 0) > record.attempt:
                return
            holdings.queue.push(record)
            holdings.changed.notify_all()
        log.info(
            "task %s attempt %d dispatched here (%s)", record.task_id, record.attempt, record.reason
        )

    def _on_fence(self, record: Control) -> None:
        holdings = self._holdings
        with holdings.lock:
            if holdings.fence is not None:
                return  # the first fence counts
            holdings.fence = record
            holdings.queue.take_all()
            running = list(holdings.running.values())
        log.error(
            "epoch %d fenced by the monitor (%s, %s): stopping %d tasks, writing nothing more",
            self._epoch,
            record.decision_id,
            record.reason,
            len(running),
        )
        for ctx in running:
            ctx._settle(Outcome.FENCED)
        self._on_fenced()

    def _move_away(self, task_id: str, attempt: int) -> None:
        holdings = self._holdings
        with holdings.lock:
            holdings.moved[task_id] = max(attempt, holdings.moved.get(task_id, 0))
            holdings.queue.drop(task_id, attempt)
            moved = [c for (t, a), c in holdings.running.items() if t == task_id and a < attempt]
        for ctx in moved:
            if ctx._settle(Outcome.MOVED):
                log.warning(
                    "task %s attempt %d moved to attempt %d: stopping it",
                    task_id,
                    ctx.attempt,
                    attempt,
                )
