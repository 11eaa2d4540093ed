"""Targets: the healthy agents a plan or the intake may place tasks on, with their load.

This worker's own candidates come from one pass over the liveness map of its partitions; the fleet
summary builds them every half second anyway (:mod:`streams.summaries`), so planning reuses the
newest for :data:`POOL_TTL` instead of walking every agent again. Agents whose record was written
since that pass (a dispatch applied, a task completed) or that were heard from for the first time
(a new agent or epoch) are looked at again on each use, so a completion frees its slot at once, a
placement the record already shows is never missed, and a new agent is a target at once.
Candidates of other workers' partitions come from their summaries
(:class:`~streams.fleet.FleetDirectory`), reused for as long.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from agent_failover.streams.detection import DetectionPolicy
from agent_failover.streams.dispatch import Candidate, candidates
from agent_failover.streams.fleet import FleetDirectory, with_remote
from agent_failover.streams.index import RecordIndex
from agent_failover.streams.ownership import Ownership
from agent_failover.streams.state import LiveEntry

#: How long the local candidates (apart from agents written since) and the remote ones are
#: reused: building them walks every owned agent, or every summary. Placements meanwhile are
#: counted by the reservations; remote candidates are older still (a summary every 0.5 s).
POOL_TTL = 0.2


class TargetPool:
    """The planning pool: this worker's candidates, then those other workers vouch for.

    ``lives`` returns a copy of the liveness map (agent id -> newest heartbeat); ``live`` looks
    up one agent's entry.
    """

    def __init__(
        self,
        policy: DetectionPolicy,
        ownership: Ownership,
        lives: Callable[[], dict[str, LiveEntry]],
        live: Callable[[str], LiveEntry | None],
        index: RecordIndex,
        directory: FleetDirectory,
    ) -> None:
        self._policy = policy
        self._ownership = ownership
        self._lives = lives
        self._live = live
        self._index = index
        self._directory = directory
        # (built at, index version it reflects, candidates)
        self._local: tuple[float, int, list[Candidate]] | None = None
        self._remote: tuple[float, list[Candidate]] | None = None
        # Agents heard from for the first time (new epochs), and when (monitor clock).
        self._heard: dict[str, float] = {}
        # The last pool built and what it was built from (reused while both are the same lists).
        self._merged: tuple[list[Candidate], list[Candidate], list[Candidate]] | None = None

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

    def offer(self, local: list[Candidate], built_at: float, version: int) -> None:
        """Reuse ``local`` (this worker's candidates as of ``built_at``, reflecting the index at
        ``version``) unless newer ones exist."""
        if self._local is None or self._local[0] <= built_at:
            self._local = (built_at, version, local)

    def heard(self, agent_ids: Collection[str], now: float) -> None:
        """``agent_ids`` were heard from for the first time (or with a new epoch) at ``now``."""
        for agent_id in agent_ids:
            self._heard[agent_id] = now

    def invalidate(self) -> None:
        """Build the candidates again at the next use (the owned records changed)."""
        self._local = None
        self._remote = None
        self._merged = None

    def local(self, now: float, max_age: float = POOL_TTL) -> list[Candidate]:
        """This worker's candidates: the newest pass (reused for ``max_age``), with the agents
        written since it looked at again."""
        if self._local is None or now - self._local[0] >= max_age:
            self._local = self._build(now)
        built, version, local = self._local
        changed = self._index.written_since(version)
        if changed is None:  # too much changed since: a new pass costs less than catching up
            self._local = self._build(now)
            return self._local[2]
        if self._heard:
            # Heard before the pass was built: in it already.
            self._heard = {a: t for a, t in self._heard.items() if t >= built}
            changed = [*changed, *self._heard]
        if not changed:
            return local
        owns = self._ownership.owns
        again = {a for a in changed if owns(a)}
        lives = [e for a in again if (e := self._live(a)) is not None]
        fresh = candidates(lives, self._index.records, now, self._policy)
        return [*(c for c in local if c.agent_id not in again), *fresh]

    def _build(self, now: float) -> tuple[float, int, list[Candidate]]:
        version = self._index.version
        return now, version, self.scan(frozenset(self._ownership.since), now)

    def remote(self, now: float) -> list[Candidate]:
        """Healthy agents other workers vouch for, reused for :data:`POOL_TTL`."""
        if self._remote is None or now - self._remote[0] >= POOL_TTL:
            self._remote = (now, self._directory.candidates(now, self._ownership.since.keys()))
        return self._remote[1]

    def pool(self, now: float, max_age: float = POOL_TTL) -> list[Candidate]:
        """Local candidates first (a pass at most ``max_age`` old), then remote ones for other
        agent ids."""
        local, remote = self.local(now, max_age), self.remote(now)
        merged = self._merged
        if merged is None or merged[0] is not local or merged[1] is not remote:
            merged = self._merged = (local, remote, with_remote(local, remote))
        return merged[2]

    def remote_count(self, now: float) -> int:
        """How many healthy agents other workers vouch for (the fleet targets gauge)."""
        return len(self._directory.candidates(now, self._ownership.since.keys()))
