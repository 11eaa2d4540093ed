"""How failovers turn out, per moved task: when it resumed, and how much progress was lost.

Two figures meet evidence from two places, in memory, on the worker that reads both (a worker
change in between loses an observation, it never makes a wrong one):

- **Resume** (``recovery_seconds``, ``rto_seconds``): a task's ``redispatch`` and its new
  attempt's ``claimed`` are both on the target agent's partitions (``tasks.priority`` and
  ``task-events``), read by the same worker in either order. When both are seen: recovery is the
  ``claimed``'s receipt minus the decision's time (``dispatched_at``); the RTO adds how long the
  failed epoch had been silent at the decision (``last_heartbeat_age_s``).
- **Loss** (``rpo_steps``, ``rpo_seconds``): when the owner of a failed epoch applies a decision
  moving its task, the dead attempt's last known step and the resumed step are taken from its
  record. ``checkpointed`` events of the fenced attempt that arrive later are rejected for state
  but still show the steps it reached, so the figure is observed :data:`LOSS_SETTLE` seconds
  after the decision was applied. The seconds lost run from when the monitor received the
  checkpoint resumed from (``TaskSlot.progress_at``) to the epoch's last heartbeat.

All times are wall clock (Unix seconds): decisions carry their issuer's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TypeVar

from agent_failover.models import Control, ControlKind, DispatchReason, Redispatch, TaskEvent
from agent_failover.streams.metrics import MonitorMetrics
from agent_failover.streams.state import AgentRecord, TaskSlot

#: Seconds between applying a decision and observing the progress it lost.
LOSS_SETTLE = 5.0
#: Seconds one half of a resume (a redispatch, or a claimed) waits for the other.
KEEP = 600.0

Attempt = tuple[str, int]  # (task_id, attempt)
DeadAttempt = tuple[str, int, str, int]  # (agent_id, epoch, task_id, attempt)
_K = TypeVar("_K")
_V = TypeVar("_V")


@dataclasses.dataclass(slots=True)
class _Loss:
    resume_step: int  # -1: resumed from the start
    last_step: int  # -1: the dead attempt reported no step
    seconds: float | None
    due: float


def stamped(old: AgentRecord | None, new: AgentRecord, task_id: str, at: float) -> AgentRecord:
    """``new`` with ``task_id``'s slot stamped with progress received at ``at``, if the event
    that made ``new`` brought progress: a new attempt, or a new checkpoint."""
    slot = new.tasks.get(task_id)
    if slot is None:
        return new
    before: TaskSlot | None = old.tasks.get(task_id) if old is not None else None
    if (
        before is not None
        and before.attempt == slot.attempt
        and before.checkpoint == slot.checkpoint
    ):
        if slot.progress_at is not None or before.progress_at is None:
            return new  # no new progress
        at = before.progress_at  # rebuilt by the event (claiming -> claimed): keep its time
    tasks = dict(new.tasks)
    tasks[task_id] = dataclasses.replace(slot, progress_at=at)
    return dataclasses.replace(new, tasks=tasks)


class RecoveryBook:
    """Observes the resume and loss figures of moved tasks into ``metrics``."""

    def __init__(self, metrics: MonitorMetrics) -> None:
        self._metrics = metrics
        self._dispatched: dict[Attempt, tuple[float, Redispatch]] = {}  # kept since, record
        self._claimed: dict[Attempt, float] = {}  # claimed received at
        self._resumed: dict[Attempt, float] = {}  # observed at: later copies are ignored
        self._losses: dict[DeadAttempt, _Loss] = {}  # in order of `due`

    # -- resume ---------------------------------------------------------------------------------

    def dispatched(self, rd: Redispatch, at: float) -> None:
        """A re-dispatch (any copy) was read at ``at``; new work (attempt 1) resumes nothing."""
        if rd.reason is DispatchReason.NEW:
            return
        key = (rd.task_id, rd.attempt)
        if key in self._resumed or key in self._dispatched:
            return
        claimed = self._claimed.pop(key, None)
        if claimed is None:
            self._dispatched[key] = (at, rd)
        else:
            self._resume(key, rd, claimed, at)

    def claimed(self, task_id: str, attempt: int, at: float) -> None:
        """Attempt ``attempt`` (>= 2: a moved task) of ``task_id`` was claimed; read at ``at``."""
        key = (task_id, attempt)
        if key in self._resumed or key in self._claimed:
            return
        pending = self._dispatched.pop(key, None)
        if pending is None:
            self._claimed[key] = at
        else:
            self._resume(key, pending[1], at, at)

    def _resume(self, key: Attempt, rd: Redispatch, claimed_at: float, at: float) -> None:
        self._resumed[key] = at
        recovery = max(0.0, claimed_at - rd.dispatched_at)
        self._metrics.recovery.observe(recovery)
        if rd.last_heartbeat_age_s is not None:
            self._metrics.rto.observe(recovery + rd.last_heartbeat_age_s)

    # -- loss -----------------------------------------------------------------------------------

    def applied(
        self, ctl: Control, before: AgentRecord | None, moved: Sequence[Redispatch], at: float
    ) -> None:
        """Decision ``ctl`` was applied at ``at`` to the record ``before``, sending ``moved``:
        note the loss of each task moved off a failed (fenced) epoch."""
        if before is None:
            return
        for rd in moved:
            slot = before.tasks.get(rd.task_id)
            if slot is None:
                continue
            if ctl.kind is not ControlKind.FENCE and not before.is_fenced(slot.epoch):
                continue  # a live agent's task (released, a late claim): nothing was lost
            resume = rd.checkpoint.step if rd.checkpoint is not None else -1
            last = max(resume, slot.checkpoint.step if slot.checkpoint is not None else -1)
            seconds = None
            # Only when the slot still holds the checkpoint resumed from: a newer one arrived
            # after the decision has its own receipt time, the resumed one's is not kept.
            silent, progress_at = rd.last_heartbeat_age_s, slot.progress_at
            if silent is not None and progress_at is not None and slot.checkpoint == rd.checkpoint:
                seconds = max(0.0, rd.dispatched_at - silent - progress_at)
            key = (before.agent_id, slot.epoch, slot.task_id, slot.attempt)
            self._losses[key] = _Loss(resume, last, seconds, at + LOSS_SETTLE)

    def late_event(self, ev: TaskEvent) -> None:
        """An event of a fenced epoch: the step of its checkpoint, if any, was reached."""
        if ev.checkpoint is None or ev.task_id is None or ev.attempt is None:
            return
        loss = self._losses.get((ev.agent_id, ev.epoch, ev.task_id, ev.attempt))
        if loss is not None:
            loss.last_step = max(loss.last_step, ev.checkpoint.step)

    # -- time -----------------------------------------------------------------------------------

    def settle(self, at: float) -> None:
        """Observe the losses due by ``at`` and forget resume halves older than :data:`KEEP`."""
        while self._losses:
            key, loss = next(iter(self._losses.items()))
            if loss.due > at:
                break
            del self._losses[key]
            self._metrics.rpo_steps.observe(loss.last_step - loss.resume_step)
            if loss.seconds is not None:
                self._metrics.rpo_seconds.observe(loss.seconds)
        _forget_before(self._claimed, at - KEEP, float)
        _forget_before(self._resumed, at - KEEP, float)
        _forget_before(self._dispatched, at - KEEP, lambda v: v[0])


def _forget_before(items: dict[_K, _V], limit: float, time_of: Callable[[_V], float]) -> None:
    """Drop the entries older than ``limit`` from ``items`` (kept in the order of their time)."""
    while items:
        key, value = next(iter(items.items()))
        if time_of(value) >= limit:
            break
        del items[key]
