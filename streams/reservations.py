"""Placements this worker made that the targets' heartbeats do not show yet.

An agent's heartbeat reports the tasks it runs; a task just placed on it shows there only after
the re-dispatch is applied, consumed and reported, up to a heartbeat timeout later. Until then the
placement counts against the target's free capacity, in this worker's plans and in the load its
fleet summary reports to other workers (docs/architecture.md, "A fleet directory").
"""

from __future__ import annotations

from collections.abc import Iterable

from agent_failover.models import PlanEntry
from streams.dispatch import AgentEpoch


class ReservationBook:
    """Target agent epoch -> task id -> until when (monitor clock) the placement counts."""

    def __init__(self, hold: float) -> None:
        self._hold = hold
        self._reserved: dict[AgentEpoch, dict[str, float]] = {}

    def reserve(self, plan: Iterable[PlanEntry], now: float) -> None:
        """Count the placed entries of ``plan`` for ``hold`` seconds from ``now``."""
        until = now + self._hold
        for e in plan:
            if e.target_agent_id is not None and e.target_epoch is not None:
                key = (e.target_agent_id, e.target_epoch)
                self._reserved.setdefault(key, {})[e.task_id] = until

    def expire(self, now: float) -> None:
        """Forget the placements whose hold ended at or before ``now``."""
        for target, tasks in list(self._reserved.items()):
            for task_id, until in list(tasks.items()):
                if until <= now:
                    del tasks[task_id]
            if not tasks:
                del self._reserved[target]

    def counts(self) -> dict[AgentEpoch, int]:
        """Target -> tasks reserved on it (a new dict: safe to hand to a worker thread)."""
        return {k: len(v) for k, v in self._reserved.items()}
