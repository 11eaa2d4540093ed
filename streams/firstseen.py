"""When this worker first saw each current epoch of an agent, on the monitor's clock.

A new epoch gets a whole heartbeat timeout for its first heartbeat, counted from when this worker
learned of it: ``agent_started`` can be processed before that heartbeat arrives, and must not
make the agent look silent since this worker took its partition over (``known_since`` of
:func:`streams.detection.dead_epochs`).
"""

from __future__ import annotations

from collections.abc import Collection

from agent_failover.streams.state import AgentRecord, LiveEntry


class FirstSeen:
    """Agent id -> epoch -> monitor time this worker first saw it, for the agents' current
    epochs only (the record's newest and the newest heartbeat's).

    Read from the health-count thread through single lookups (atomic under the GIL); written on
    the event loop only.
    """

    def __init__(self) -> None:
        self._seen: dict[str, dict[int, float]] = {}

    def note(
        self, agent_id: str, record: AgentRecord | None, live: LiveEntry | None, now: float
    ) -> None:
        """Remember ``now`` for the agent's current epochs not seen before; forget the others."""
        epochs = {e for e in (record.epoch if record else None, live.epoch if live else None) if e}
        known = self._seen.setdefault(agent_id, {})
        for epoch in epochs:
            known.setdefault(epoch, now)
        if len(known) > len(epochs):  # forget superseded epochs
            for epoch in [e for e in known if e not in epochs]:
                del known[epoch]

    def get(self, agent_id: str) -> dict[int, float] | None:
        """Epoch -> first seen, for ``agent_id``; ``None`` if it was never noted. Read only."""
        return self._seen.get(agent_id)

    def forget(self, agent_id: str) -> None:
        """Drop ``agent_id`` (no longer owned, or gone from both the table and liveness)."""
        self._seen.pop(agent_id, None)

    def keep_only(self, agent_ids: Collection[str]) -> None:
        """Forget every agent not in ``agent_ids`` (after the owned records were indexed again)."""
        for agent_id in [a for a in self._seen if a not in agent_ids]:
            del self._seen[agent_id]
