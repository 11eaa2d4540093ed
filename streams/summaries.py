"""What this worker tells others and Prometheus about its agents: the fleet summary and the
health counts, both passes over every owned agent, made in a worker thread.

A pass over 20k agents takes tens of milliseconds; on the event loop it delayed the detection
ticks behind it by as much (docs/architecture.md, "Monitor hot path"). So each pass runs in the
default executor from a task of its own, at most one of each kind at a time, and a tick only
starts them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import logging
import time
from collections.abc import Callable, Mapping

from agent_failover.models import Pool
from agent_failover.streams.channels import Send
from agent_failover.streams.detection import DetectionPolicy, Health, health_of
from agent_failover.streams.dispatch import AgentEpoch, Candidate, free_by_pool
from agent_failover.streams.firstseen import FirstSeen
from agent_failover.streams.fleet import PUBLISH_INTERVAL, encode_summary
from agent_failover.streams.index import RecordIndex
from agent_failover.streams.metrics import MonitorMetrics
from agent_failover.streams.ownership import Ownership
from agent_failover.streams.reservations import ReservationBook
from agent_failover.streams.state import AgentRecord, LiveEntry, SlotStatus
from agent_failover.streams.targets import TargetPool

log = logging.getLogger(__name__)

#: Seconds between two health counts.
HEALTH_INTERVAL = 1.0
#: A fenced agent counts as failed (not stopped) this long after its fence, unless it came back
#: with a new epoch: long enough for every scrape and alert to see it.
FAILED_FOR = 15 * 60.0


@dataclasses.dataclass(frozen=True, slots=True)
class HealthCount:
    """Owned agents by (health, pool), and when the oldest running task last made progress
    (wall clock; ``None``: no running task with a known time)."""

    agents: dict[tuple[Health, Pool], int]
    oldest_progress_at: float | None = None


def _failed(record: AgentRecord, newest: int, wall: float) -> bool:
    """Whether ``newest``, the agent's newest epoch, was fenced less than FAILED_FOR ago."""
    fence = record.fence_of(newest)
    if fence is None or newest in record.stopped:
        return False
    return wall - fence.issued_at < FAILED_FOR


def count_health(
    lives: Mapping[str, LiveEntry],
    records: Mapping[str, AgentRecord],
    owned_since: Mapping[int, float],
    partition_of: Callable[[str], int],
    first_seen: Callable[[str], dict[int, float] | None],
    now: float,
    policy: DetectionPolicy,
    wall: float,
) -> HealthCount:
    """Owned agents (those of ``owned_since``'s partitions) by the health of their newest epoch
    and their pool, and the oldest progress of their running tasks (``wall``: the wall clock).

    A fenced epoch is ``failed`` for :data:`FAILED_FOR` (or until a new epoch appears), then
    ``stopped``; :func:`health_of` calls it stopped at once, which left ``failed`` at 0 right
    after a failover.
    """
    counts: dict[tuple[Health, Pool], int] = {}
    oldest: float | None = None
    everyone = itertools.chain(lives, (a for a in records if a not in lives))
    for agent_id in everyone:
        since = owned_since.get(partition_of(agent_id))
        if since is None:
            continue  # not ours
        record, live = records.get(agent_id), lives.get(agent_id)
        h = health_of(record, live, now, since, policy, first_seen(agent_id))
        if h is Health.STOPPED and record is not None:
            newest = max(e for e in (record.epoch, live.epoch if live else None) if e is not None)
            if _failed(record, newest, wall):
                h = Health.FAILED
        pool = live.pool if live is not None else (record.pool if record else Pool.ACTIVE)
        counts[(h, pool)] = counts.get((h, pool), 0) + 1
        if record is not None and record.tasks:
            for slot in record.tasks.values():
                at = slot.progress_at
                if slot.status is SlotStatus.OWNED and at is not None:
                    oldest = at if oldest is None else min(oldest, at)
    return HealthCount(counts, oldest)


class SummaryPublisher:
    """Publishes the fleet summary (every :data:`~streams.fleet.PUBLISH_INTERVAL`, and at once
    when the owned partitions change) and the health gauges (every :data:`HEALTH_INTERVAL`).

    ``lives`` returns a copy of the liveness map.
    """

    def __init__(
        self,
        monitor_id: str,
        fleet_topic: str,
        send: Send,
        *,
        policy: DetectionPolicy,
        ownership: Ownership,
        lives: Callable[[], dict[str, LiveEntry]],
        index: RecordIndex,
        first_seen: FirstSeen,
        targets: TargetPool,
        reservations: ReservationBook,
        metrics: MonitorMetrics,
    ) -> None:
        self._monitor_id = monitor_id
        self._topic = fleet_topic
        self._send = send
        self._policy = policy
        self._ownership = ownership
        self._lives = lives
        self._index = index
        self._first_seen = first_seen
        self._targets = targets
        self._reservations = reservations
        self._metrics = metrics
        self._published: frozenset[int] | None = None  # partitions of the last summary sent
        self._last_publish = 0.0
        self._last_health: float | None = None
        self._summary_job: asyncio.Future[None] | None = None
        self._health_job: asyncio.Future[None] | None = None

    async def wait(self) -> None:
        """Until the summary and the health count in flight, if any, are done."""
        jobs = [j for j in (self._summary_job, self._health_job) if j is not None and not j.done()]
        await asyncio.gather(*jobs)

    # -- the fleet summary ----------------------------------------------------------------------

    def publish_fleet(self, partitions: frozenset[int], now: float) -> None:
        """Publish this worker's fleet summary if one is due at ``now``: every publish interval,
        and at once when the owned partitions changed (a rebalance: readers must stop trusting
        the previous owner soon). An empty ``partitions`` retracts this worker's claims."""
        if partitions == self._published and now - self._last_publish < PUBLISH_INTERVAL:
            return
        if self._summary_job is not None and not self._summary_job.done():
            return  # the previous summary is still being built or sent: do not pile them up
        # In a task of its own, acknowledgement not awaited: a summary is soft state, the next one
        # follows soon, and detection must never wait on it (a producer blocks on a missing
        # topic's metadata until its request timeout).
        self._summary_job = asyncio.ensure_future(self._publish_summary(partitions, now))
        self._published, self._last_publish = partitions, now

    async def _publish_summary(self, partitions: frozenset[int], now: float) -> None:
        reserved, at = self._reservations.counts(), time.time()
        version = self._index.version  # what the pass below reflects, at least
        try:
            loop = asyncio.get_running_loop()
            local, value = await loop.run_in_executor(
                None, self._build_summary, partitions, reserved, now, at
            )
        except Exception:
            log.exception("cannot build the fleet summary")
            return
        self._targets.offer(local, now, version)  # planning reuses it for a while
        self._metrics.set_free_slots(free_by_pool(local, reserved))
        try:
            await self._send(self._topic, self._monitor_id.encode(), value, 0)
        except Exception:
            log.exception("cannot publish the fleet summary; other workers will not target ours")

    def _build_summary(
        self, partitions: frozenset[int], reserved: dict[AgentEpoch, int], now: float, at: float
    ) -> tuple[list[Candidate], bytes]:
        """Runs in a worker thread: reads only copies, and the index through single lookups."""
        local = self._targets.scan(partitions, now) if partitions else []
        return local, encode_summary(self._monitor_id, partitions, local, reserved, at)

    # -- the health gauges ----------------------------------------------------------------------

    def publish_health(self, now: float) -> None:
        """Count the owned agents by health if a count is due at ``now`` and none is running."""
        if self._last_health is not None and now - self._last_health < HEALTH_INTERVAL:
            return
        self._last_health = now
        if self._health_job is not None and not self._health_job.done():
            return
        # Copies of what the loop mutates; the worker only reads them (records are immutable).
        job = functools.partial(
            self._count, dict(self._index.records), dict(self._ownership.since), now, time.time()
        )
        self._health_job = asyncio.ensure_future(self._count_health(job, now))

    def _count(
        self,
        records: dict[str, AgentRecord],
        owned_since: dict[int, float],
        now: float,
        wall: float,
    ) -> HealthCount:
        """Runs in a worker thread (the liveness map is copied there, not on the loop)."""
        return count_health(
            self._lives(),
            records,
            owned_since,
            self._ownership.partition_of,
            self._first_seen.get,
            now,
            self._policy,
            wall,
        )

    async def _count_health(self, job: Callable[[], HealthCount], now: float) -> None:
        try:
            count = await asyncio.get_running_loop().run_in_executor(None, job)
        except Exception:
            log.exception("cannot count agents by health")
            return
        self._metrics.set_health(count.agents)
        oldest = count.oldest_progress_at
        self._metrics.oldest_checkpoint_age.set(0.0 if oldest is None else time.time() - oldest)
        self._metrics.fleet_targets.set(self._targets.remote_count(now))
