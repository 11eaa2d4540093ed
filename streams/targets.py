"""Failover targets: the healthy agents a plan may place tasks on.

This worker's own candidates come from one pass over the liveness map of its partitions; the fleet
summary builds them every half second anyway (:mod:`streams.summaries`), so planning reuses the
newest for :data:`POOL_TTL` instead of walking every agent again in the tick. Candidates of other
workers' partitions come from their summaries (:class:`~streams.fleet.FleetDirectory`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from streams.detection import DetectionPolicy
from streams.dispatch import Candidate, candidates
from streams.fleet import FleetDirectory, with_remote
from streams.index import RecordIndex
from streams.ownership import Ownership
from streams.state import LiveEntry

#: How long the local candidates are reused: building them walks every owned agent. Placements
#: meanwhile are counted by the reservations; remote candidates are older still (a summary every
#: 0.5 s).
POOL_TTL = 0.2


class TargetPool:
    """The planning pool: this worker's candidates, then those other workers vouch for.

    ``lives`` returns a copy of the liveness map (agent id -> newest heartbeat).
    """

    def __init__(
        self,
        policy: DetectionPolicy,
        ownership: Ownership,
        lives: Callable[[], dict[str, LiveEntry]],
        index: RecordIndex,
        directory: FleetDirectory,
    ) -> None:
        self._policy = policy
        self._ownership = ownership
        self._lives = lives
        self._index = index
        self._directory = directory
        self._local: tuple[float, list[Candidate]] | None = None  # (built at, candidates)

    def scan(self, partitions: Collection[int], now: float) -> list[Candidate]:
        """The healthy agents of ``partitions`` at ``now``: one pass over the liveness map.

        Safe in a worker thread: it reads a copy of the liveness map and the index through
        single lookups.
        """
        lives = self._lives()
        if len(partitions) != self._ownership.partitions:
            part = self._ownership.partition_of
            lives = {a: e for a, e in lives.items() if part(a) in partitions}
        return candidates(lives.values(), self._index.records, now, self._policy)

    def offer(self, local: list[Candidate], built_at: float) -> None:
        """Reuse ``local`` (this worker's candidates as of ``built_at``) unless newer ones exist."""
        if self._local is None or self._local[0] <= built_at:
            self._local = (built_at, local)

    def invalidate(self) -> None:
        """Build the local candidates again at the next use (the owned records changed)."""
        self._local = None

    def local(self, now: float) -> list[Candidate]:
        """This worker's candidates, reused for :data:`POOL_TTL`."""
        if self._local is not None and now - self._local[0] < POOL_TTL:
            return self._local[1]
        local = self.scan(frozenset(self._ownership.since), now)
        self._local = (now, local)
        return local

    def pool(self, now: float) -> list[Candidate]:
        """Local candidates first, then remote ones for other agent ids."""
        remote = self._directory.candidates(now, self._ownership.since.keys())
        return with_remote(self.local(now), remote)

    def remote_count(self, now: float) -> int:
        """How many healthy agents other workers vouch for (the fleet targets gauge)."""
        return len(self._directory.candidates(now, self._ownership.since.keys()))
