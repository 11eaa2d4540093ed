"""The decisions this worker wrote and has not yet seen applied: it never writes one twice.

A decision record is applied by the faust agent consuming ``control``, some time after the tick
that wrote it; meanwhile detection may find the same dead epoch or queued task again. The log
keeps each written decision, keyed by what it decides, until the agent's indexed record shows it
applied or until it expires (a decision lost or refused is written again then).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from agent_failover.models import PlanEntry
from agent_failover.streams.state import AgentRecord, TaskSlot


@dataclasses.dataclass(frozen=True, slots=True)
class Fence:
    """The fence of one agent epoch."""

    agent_id: str
    epoch: int

    def applied(self, record: AgentRecord | None) -> bool:
        """Whether ``record`` shows the epoch fenced."""
        return record is not None and record.is_fenced(self.epoch)


@dataclasses.dataclass(frozen=True, slots=True)
class Move:
    """The dispatch of one task away from the attempt its agent's record held when it was
    decided (``attempt_held``). The plan entry names the next attempt, ``attempt_held + 1``
    (:func:`streams.dispatch.plan_moves`); once applied, the record no longer holds
    ``attempt_held`` of the task."""

    agent_id: str
    task_id: str
    attempt_held: int

    @classmethod
    def of_slot(cls, agent_id: str, slot: TaskSlot) -> Move:
        """The move of the attempt ``slot`` holds."""
        return cls(agent_id, slot.task_id, slot.attempt)

    @classmethod
    def of_entry(cls, agent_id: str, entry: PlanEntry) -> Move:
        """The move a plan entry decides: it names the attempt after the one held."""
        return cls(agent_id, entry.task_id, entry.attempt - 1)

    def applied(self, record: AgentRecord | None) -> bool:
        """Whether ``record`` no longer holds the moved attempt (moved, or finished)."""
        slot = record.tasks.get(self.task_id) if record is not None else None
        return slot is None or slot.attempt != self.attempt_held


Decision = Fence | Move


class DecisionLog:
    """Decisions written (monitor time) and not yet seen applied; each forgotten after ``ttl``."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._written: dict[Decision, float] = {}

    def wrote(self, decision: Decision, now: float) -> None:
        """Remember that ``decision`` was written at ``now``."""
        self._written[decision] = now

    def __contains__(self, decision: object) -> bool:
        return decision in self._written

    def __len__(self) -> int:
        return len(self._written)

    def expire(self, now: float, record_of: Callable[[str], AgentRecord | None]) -> None:
        """Forget decisions whose agent's record (``record_of``) shows them applied, and those
        older than the ttl."""
        for decision, at in list(self._written.items()):
            if decision.applied(record_of(decision.agent_id)) or now - at > self._ttl:
                del self._written[decision]
