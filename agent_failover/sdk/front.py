"""What the two fronts (:class:`~agent_failover.sdk.Agent`, :class:`~agent_failover.sdk.AsyncAgent`)
share: the read-only view of their agent core."""

from __future__ import annotations

from agent_failover.sdk.core import AgentCore
from agent_failover.sdk.health import AgentStatus


class AgentFront:
    """What the synchronous and asyncio fronts share: the read-only view of the core."""

    _core: AgentCore

    @property
    def agent_id(self) -> str:
        """This agent's id."""
        return self._core.agent_id

    @property
    def epoch(self) -> int:
        """This incarnation's epoch (after ``start()``)."""
        return self._core.epoch

    @property
    def fenced(self) -> bool:
        """True once the monitor fenced this epoch."""
        return self._core.fenced

    def in_flight(self) -> dict[str, int]:
        """Task id -> attempt of the tasks held now (running or queued)."""
        return self._core.held()

    def status(self) -> AgentStatus:
        """This agent's health now: broker reachable, lease valid, fenced, tasks running and
        queued (:class:`~agent_failover.sdk.health.AgentStatus`)."""
        return self._core.status()
