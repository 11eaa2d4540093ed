"""The fleet directory: healthy agents owned by other monitor workers, as failover targets.

Each worker reads only the heartbeat partitions it owns, so on its own it can place a dead agent's
tasks only on agents of those partitions. Every worker therefore publishes a
:class:`~agent_failover.models.FleetSummary` of its healthy agents to the one-partition ``fleet``
topic every :data:`PUBLISH_INTERVAL` (and at once when its partitions change), and reads everyone's
summaries into a :class:`FleetDirectory`. Reading a summary per worker, not every heartbeat, keeps
heartbeat ingest split across workers.

Trust rules, all on the READER's monotonic clock (time of receipt, never the publisher's ``at``):

- a summary older than :data:`EXPIRE_AFTER` is ignored (its publisher may be dead or stalled);
- a summary speaks only for the partitions it lists, and for a partition only while it is the
  newest summary received that lists it (a worker that lost a partition must not be trusted for
  it until it republishes without it);
- partitions the reader owns are ignored: its own live view of them wins.

Everything but :class:`FleetDirectory`'s lock is a pure function, tested without Kafka.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import threading
from collections.abc import Collection, Iterable, Mapping, Sequence

import orjson

from agent_failover.models import SCHEMA_VERSION, FleetAgent, FleetSummary, Pool
from agent_failover.partitioner import partition_for
from agent_failover.streams.dispatch import AgentEpoch, Candidate

#: How often a worker publishes its summary (seconds of its monotonic clock).
PUBLISH_INTERVAL = 0.5
#: A summary not followed by a newer one from the same worker within this long is ignored: three
#: intervals, so one late or lost summary does not make a healthy worker's agents vanish.
EXPIRE_AFTER = 3 * PUBLISH_INTERVAL
#: At most this many agents in one summary, the best targets first (see :func:`best_targets`).
#: An agent takes about 110 bytes, so a summary stays well under the brokers' default 1 MB record
#: limit; listing every healthy agent failed to publish at all beyond about 9,000 per worker.
MAX_SUMMARY_AGENTS = 4000


@dataclasses.dataclass(frozen=True, slots=True)
class Received:
    """A summary and when this worker received it (its own ``time.monotonic()``)."""

    summary: FleetSummary
    received_at: float


def best_targets(
    local: Iterable[Candidate],
    reserved: Mapping[AgentEpoch, int],
    limit: int = MAX_SUMMARY_AGENTS,
) -> list[Candidate]:
    """The candidates a summary lists, with reservations added to their load, by agent id.

    Beyond ``limit``, the ones :func:`~streams.dispatch.plan_moves` would pick first are kept:
    agents with free capacity before full ones, standbys first, then the least loaded. A reader
    only needs enough targets for the tasks of the agents it fences.
    """
    loaded = list(local)
    if reserved:
        loaded = [
            dataclasses.replace(c, in_flight=c.in_flight + reserved[c.key])
            if c.key in reserved
            else c
            for c in loaded
        ]
    if len(loaded) > limit:
        # plan_moves' preference as plain tuples (compared in C, no key function per agent).
        ranked = [
            (
                c.capacity - c.in_flight <= 0,
                c.pool is not Pool.STANDBY,
                c.in_flight / c.capacity if c.capacity > 0 else math.inf,
                c.in_flight,
                c.agent_id,
                c.epoch,
                i,
            )
            for i, c in enumerate(loaded)
        ]
        loaded = [loaded[r[-1]] for r in heapq.nsmallest(limit, ranked)]
    return sorted(loaded, key=lambda c: (c.agent_id, c.epoch))


def summarize(
    monitor_id: str,
    owned: Collection[int],
    local: Iterable[Candidate],
    reserved: Mapping[AgentEpoch, int],
    at: float,
    limit: int = MAX_SUMMARY_AGENTS,
) -> FleetSummary:
    """This worker's summary: its owned partitions and the candidates among its own agents
    (at most ``limit``, see :func:`best_targets`).

    Load includes this worker's recent reservations: tasks it just placed on an agent are not in
    that agent's heartbeats yet, and other workers would otherwise see the slots as free.
    """
    agents = tuple(
        FleetAgent(
            agent_id=c.agent_id,
            epoch=c.epoch,
            capacity=c.capacity,
            in_flight=c.in_flight,
            pool=c.pool,
        )
        for c in best_targets(local, reserved, limit)
    )
    return FleetSummary(
        monitor_id=monitor_id, at=at, partitions=tuple(sorted(owned)), agents=agents
    )


def encode_summary(
    monitor_id: str,
    owned: Collection[int],
    local: Iterable[Candidate],
    reserved: Mapping[AgentEpoch, int],
    at: float,
    limit: int = MAX_SUMMARY_AGENTS,
) -> bytes:
    """``summarize(...).encode()``, byte for byte, without building a record per agent.

    A fast path kept on measurement (``bench/codec_cost.py``): at 4,000 agents it takes about a
    fifth of the generic encoder's time (3 ms against 16 ms, mostly building a frozen
    ``FleetAgent`` per agent), twice a second, holding the interpreter lock the detection tick
    needs. ``tests/streams/test_fleet.py`` checks it against the generic encoder on generated
    fleets, so a field added to :class:`FleetAgent` and forgotten here fails the tests.
    """
    agents = [
        {
            "agent_id": c.agent_id,
            "epoch": c.epoch,
            "capacity": c.capacity,
            "in_flight": c.in_flight,
            "pool": c.pool.value,
            "draining": False,
        }
        for c in best_targets(local, reserved, limit)
    ]
    return orjson.dumps(
        {
            "monitor_id": monitor_id,
            "at": at,
            "partitions": sorted(owned),
            "agents": agents,
            "schema_version": SCHEMA_VERSION,
        }
    )


def remote_candidates(
    received: Iterable[Received],
    *,
    now: float,
    owned: Collection[int],
    partitions: int,
    self_id: str,
    expire_after: float = EXPIRE_AFTER,
) -> list[Candidate]:
    """Candidates other workers vouch for, by the trust rules of this module, in agent id order.

    ``partitions`` is the agent partition count (to place each agent id in its partition).
    """
    fresh = sorted(
        (
            r
            for r in received
            if now - r.received_at < expire_after and r.summary.monitor_id != self_id
        ),
        key=lambda r: (r.received_at, r.summary.monitor_id),
    )
    claimant: dict[int, Received] = {}
    for r in fresh:  # oldest first: the newest claim of a partition is written last and wins
        for p in r.summary.partitions:
            claimant[p] = r
    out: dict[str, Candidate] = {}
    for r in fresh:
        for a in r.summary.agents:
            p = partition_for(a.agent_id, partitions)
            if p in owned or claimant.get(p) is not r or a.draining:
                continue
            out[a.agent_id] = Candidate(a.agent_id, a.epoch, a.pool, a.capacity, a.in_flight)
    return [out[k] for k in sorted(out)]


def with_remote(local: Sequence[Candidate], remote: Iterable[Candidate]) -> list[Candidate]:
    """The planning pool: this worker's own candidates, then remote ones for other agent ids."""
    mine = {c.agent_id for c in local}
    return [*local, *(c for c in remote if c.agent_id not in mine)]


class FleetDirectory:
    """The newest summary received from each other worker; fed from the heartbeat thread.

    ``monitor_id`` is this worker's own id: its own summaries, read back from the topic, are
    ignored.
    """

    def __init__(
        self, monitor_id: str, partitions: int, *, expire_after: float = EXPIRE_AFTER
    ) -> None:
        self.monitor_id = monitor_id
        self._partitions = partitions
        self._expire_after = expire_after
        self._latest: dict[str, Received] = {}
        self._lock = threading.Lock()

    def receive(self, summary: FleetSummary, now: float) -> None:
        """Record ``summary`` as received at ``now`` (this worker's ``time.monotonic()``)."""
        with self._lock:
            self._latest[summary.monitor_id] = Received(summary, now)
            # Workers that stopped publishing (restarted: a new id) would otherwise pile up.
            for mid, r in list(self._latest.items()):
                if now - r.received_at >= self._expire_after:
                    del self._latest[mid]

    def candidates(self, now: float, owned: Collection[int]) -> list[Candidate]:
        """Healthy agents of partitions this worker does not own, as others last reported them."""
        with self._lock:
            received = list(self._latest.values())
        return remote_candidates(
            received,
            now=now,
            owned=owned,
            partitions=self._partitions,
            self_id=self.monitor_id,
            expire_after=self._expire_after,
        )
