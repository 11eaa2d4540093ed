"""Placements this worker made that the load it plans with does not show yet.

A task placed on an agent (new work or a failover) reaches the agent's record only once the
dispatch is forwarded to ``tasks.priority`` and read back, and another worker's fleet summary
only after that worker saw it and published again. Until then the placement counts against the
target's free capacity, in this worker's plans and in the load its fleet summary reports to other
workers (docs/architecture.md, "A fleet directory"):

- on a target of this worker's own partitions (*local*), until the target's record shows the task
  (:meth:`ReservationBook.settle`), or at the latest after ``local_hold``;
- on another worker's target (*remote*), for ``remote_hold``: about when the owner's next summary
  includes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from agent_failover.models import PlanEntry
from agent_failover.streams.dispatch import AgentEpoch
from agent_failover.streams.state import AgentRecord


class ReservationBook:
    """Target agent id -> epoch -> task id -> until when (monitor clock) the placement counts."""

    def __init__(self, *, local_hold: float, remote_hold: float) -> None:
        self._local_hold = local_hold
        self._remote_hold = remote_hold
        self._reserved: dict[str, dict[int, dict[str, float]]] = {}

    def reserve(self, target: AgentEpoch, task_id: str, now: float, *, local: bool) -> None:
        """Count ``task_id`` on ``target`` from ``now``."""
        hold = self._local_hold if local else self._remote_hold
        agent_id, epoch = target
        self._reserved.setdefault(agent_id, {}).setdefault(epoch, {})[task_id] = now + hold

    def reserve_plan(
        self, plan: Iterable[PlanEntry], now: float, local: Callable[[str], bool]
    ) -> None:
        """Count the placed entries of ``plan``; ``local(agent_id)``: the target is ours."""
        for e in plan:
            if e.target_agent_id is not None and e.target_epoch is not None:
                target = (e.target_agent_id, e.target_epoch)
                self.reserve(target, e.task_id, now, local=local(e.target_agent_id))

    def settle(self, record: AgentRecord) -> None:
        """Forget the placements on ``record``'s agent that the record now shows: the task is
        held by the target epoch or finished there, or the epoch is fenced or stopped (its load
        no longer matters)."""
        epochs = self._reserved.get(record.agent_id)
        if epochs is None:
            return
        for epoch, tasks in list(epochs.items()):
            gone = epoch in record.stopped or record.is_fenced(epoch)
            for task_id in list(tasks):
                slot = record.tasks.get(task_id)
                if gone or (slot is not None and slot.epoch == epoch) or record.is_done(task_id, 1):
                    del tasks[task_id]
        self._prune(record.agent_id)

    def release(self, target: AgentEpoch, task_id: str) -> None:
        """Forget one placement that will never happen (its decision lost to an earlier one)."""
        agent_id, epoch = target
        self._reserved.get(agent_id, {}).get(epoch, {}).pop(task_id, None)
        self._prune(agent_id)

    def expire(self, now: float) -> None:
        """Forget the placements whose hold ended at or before ``now``."""
        for agent_id, epochs in list(self._reserved.items()):
            for tasks in epochs.values():
                for task_id in [t for t, until in tasks.items() if until <= now]:
                    del tasks[task_id]
            self._prune(agent_id)

    def _prune(self, agent_id: str) -> None:
        epochs = self._reserved.get(agent_id)
        if epochs is None:
            return
        for epoch in [e for e, tasks in epochs.items() if not tasks]:
            del epochs[epoch]
        if not epochs:
            del self._reserved[agent_id]

    def counts(self) -> dict[AgentEpoch, int]:
        """Target -> tasks reserved on it (a new dict: safe to hand to a worker thread)."""
        return {
            (agent_id, epoch): len(tasks)
            for agent_id, epochs in self._reserved.items()
            for epoch, tasks in epochs.items()
        }

    def __len__(self) -> int:
        return sum(len(t) for epochs in self._reserved.values() for t in epochs.values())
