"""Which agent partitions this worker owns, since when, and which partition an agent id is in.

faust assigns a worker the agent partitions it decides for. A partition's *owned since* is when
this worker could first hear every live agent of it: the monitor moves it forward while the
heartbeat thread has not yet read the partition to its end, and for every partition after a
stall. Detection ages an agent never heard by this worker from there (plus ``grace_period``),
never from before this worker arrived (docs/architecture.md, "Monitor takeover").
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping

from agent_failover.partitioner import partition_for

log = logging.getLogger(__name__)

#: Agent ids churn; the partition cache is cleared when it reaches this many.
_CACHE_LIMIT = 1 << 20


class Ownership:
    """The owned agent partitions and since when each is owned (monitor clock).

    ``partitions`` is the agent partition count; ``grace_period`` is only logged here (detection
    applies it).
    """

    def __init__(self, partitions: int, grace_period: float) -> None:
        self._partitions = partitions
        self._grace_period = grace_period
        self._since: dict[int, float] = {}
        self._owns_all = False  # every agent partition is ours: nothing to filter
        self._partition_cache: dict[str, int] = {}

    @property
    def since(self) -> Mapping[int, float]:
        """Owned partition -> when this worker took it over (monitor clock). Read only."""
        return self._since

    def set(self, partitions: Collection[int], now: float) -> None:
        """The partitions faust assigned this worker: new ones are owned since ``now``; others
        are forgotten."""
        wanted = set(partitions)
        for p in [p for p in self._since if p not in wanted]:
            del self._since[p]
        for p in sorted(wanted - self._since.keys()):
            self._since[p] = now
            log.info("took over partition %d (grace %.1fs)", p, self._grace_period)
        self._owns_all = len(self._since) == self._partitions

    def rearm(self, now: float, partitions: Collection[int] | None = None) -> None:
        """Count ``partitions`` (default: every owned one) as owned since ``now``: their
        heartbeats are not read to the end yet, or liveness was stale (a stall)."""
        for p in self._since if partitions is None else partitions:
            if p in self._since:
                self._since[p] = now

    def partition_of(self, agent_id: str) -> int:
        """The agent-keyed partition of ``agent_id`` (Kafka's Java partitioner)."""
        # A plain dict, not lru_cache: it is asked once per agent in every pass over the fleet.
        p = self._partition_cache.get(agent_id)
        if p is None:
            if len(self._partition_cache) >= _CACHE_LIMIT:
                self._partition_cache.clear()
            p = self._partition_cache[agent_id] = partition_for(agent_id, self._partitions)
        return p

    def owns(self, agent_id: str) -> bool:
        """Whether ``agent_id``'s partition is owned by this worker."""
        return self._owns_all or self.partition_of(agent_id) in self._since

    def owned_since(self, agent_id: str) -> float | None:
        """When this worker took over ``agent_id``'s partition; ``None`` if it does not own it."""
        return self._since.get(self.partition_of(agent_id))

    @property
    def owns_all(self) -> bool:
        """Whether every agent partition is owned here (filters can be skipped)."""
        return self._owns_all

    @property
    def partitions(self) -> int:
        """The agent partition count."""
        return self._partitions
