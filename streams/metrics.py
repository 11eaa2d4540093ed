"""Prometheus metrics of a monitor worker, in a registry of their own.

Every metric is listed, with its meaning, type, labels and how to add it up across workers, in
``docs/metrics.md``, which :mod:`streams.metricsdoc` writes from this registry (a test keeps the
two equal). Conventions: names start with ``agent_failover_``, counters end in ``_total``, times
are in seconds; labels take a small fixed set of values (never a task or agent id), and every
label value of that set exists at 0 from the start. The ``_created`` series are disabled; the
process, platform and garbage-collector collectors are registered.

A registry per :class:`MonitorMetrics` (not the process-wide default) lets tests and a process
that builds several apps create them again without "duplicated timeseries" errors.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from agent_failover import __version__
from agent_failover.config import Topics
from agent_failover.errors import Refusal
from agent_failover.models import DispatchReason, Pool
from agent_failover.streams.detection import Health
from agent_failover.streams.events import (
    DUPLICATE,
    FENCED_EPOCH,
    STALE_EPOCH,
    SUPERSEDED_ATTEMPT,
    UNKNOWN_TASK,
)

PREFIX = "agent_failover_"

#: Who wrote a dead letter.
MONITOR, AGENT = "monitor", "agent"

# The label values each labelled metric starts with (topics by their logical names).
STATES = tuple(h.value for h in Health)
POOLS = tuple(p.value for p in Pool)
# New work (reason `new`) is neither a failover nor a move: it counts in tasks_dispatched.
REASONS = tuple(r.value for r in DispatchReason if r is not DispatchReason.NEW)
REJECTIONS = (FENCED_EPOCH, SUPERSEDED_ATTEMPT, UNKNOWN_TASK, STALE_EPOCH, DUPLICATE)
REFUSALS = tuple(r.value for r in Refusal)
DEAD_LETTER_TOPICS = (
    "heartbeats",
    "tasks",
    "tasks.assigned",
    "task-events",
    "control",
    "tasks.priority",
    "checkpoints",
    "fleet",
)
SOURCES = (MONITOR, AGENT)
LAG_TOPICS = ("heartbeats", "task-events", "control", "tasks.priority", "tasks", "tasks.assigned")

ARRIVAL_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: Fine buckets from 1 ms: the overhead above the timeout is what an operator watches.
DETECTION_DELAY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
RECOVERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
RTO_BUCKETS = (0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0, 120.0)
RPO_STEP_BUCKETS = (0.0, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0)
RPO_SECONDS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
APPLY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
TICK_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


def logical_topic(topics: Topics, name: str) -> str:
    """A topic's name without the deployment's prefix (``af.task-events`` -> ``task-events``)."""
    return name.removeprefix(topics.prefix)


class BatchHistogram(Collector):
    """A histogram fed a batch of values at a time: one lock per batch, not one per value.

    The heartbeat thread observes every heartbeat's arrival lag, up to 20,000 a second, where
    :meth:`Histogram.observe` would cost ~2 µs each under its lock.
    """

    def __init__(
        self, name: str, documentation: str, buckets: Sequence[float], registry: CollectorRegistry
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._bounds = tuple(float(b) for b in buckets)
        self._counts = [0] * (len(self._bounds) + 1)  # the last one is +Inf
        self._sum = 0.0
        self._lock = threading.Lock()
        registry.register(self)

    def observe_many(self, values: Iterable[float]) -> None:
        """Count ``values`` (each at least 0: a negative one counts as 0)."""
        counts = [0] * len(self._counts)
        total = 0.0
        bounds = self._bounds
        for value in values:
            value = max(value, 0.0)
            counts[bisect.bisect_left(bounds, value)] += 1
            total += value
        with self._lock:
            for i, n in enumerate(counts):
                self._counts[i] += n
            self._sum += total

    def describe(self) -> Iterable[Metric]:
        return [HistogramMetricFamily(self._name, self._documentation)]

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, running = [], 0
        for bound, n in zip((*self._bounds, float("inf")), counts, strict=True):
            running += n
            cumulative.append(("+Inf" if math.isinf(bound) else repr(bound), running))
        return [
            HistogramMetricFamily(
                self._name, self._documentation, buckets=cumulative, sum_value=total
            )
        ]


class MonitorMetrics:
    """Every metric one monitor worker exports; each worker reports only what it owns."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call] # process-wide: noise here
        self.registry = r = registry or CollectorRegistry()
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)

        # -- gauges ---------------------------------------------------------------------------
        self.build_info = Gauge(
            f"{PREFIX}build_info", "Always 1; the version label names the release", ["version"],
            registry=r,
        )  # fmt: skip
        self.build_info.labels(version=__version__).set(1)
        self.ready = Gauge(f"{PREFIX}ready", "1 when /readyz answers 200, else 0", registry=r)
        self.broker_up = Gauge(
            f"{PREFIX}broker_up", "1 when the broker answered within the last 10 s", registry=r
        )
        self.ready.set_function(lambda: 0.0)
        self.broker_up.set_function(lambda: 0.0)
        self.partitions_owned = Gauge(
            f"{PREFIX}partitions_owned", "Agent partitions this worker owns", registry=r
        )
        self.agents = Gauge(
            f"{PREFIX}agents",
            "Agents of the owned partitions by health and pool; failed: fenced and not back with "
            "a new epoch (for 15 min), or silent past the timeout and not yet fenced",
            ["state", "pool"],
            registry=r,
        )
        self.free_slots = Gauge(
            f"{PREFIX}agent_free_slots",
            "Free task slots of healthy agents: capacity minus tasks held or just placed there",
            ["pool"],
            registry=r,
        )
        self.waiting_for_agent = Gauge(
            f"{PREFIX}tasks_waiting_for_agent",
            "Tasks that must move but found no healthy agent with a free slot",
            registry=r,
        )
        self.backlog = Gauge(
            f"{PREFIX}tasks_backlog",
            "Tasks in the owned partitions of the task topic not yet dispatched to an agent",
            registry=r,
        )
        self.stuck = Gauge(
            f"{PREFIX}tasks_stuck",
            "Tasks waiting (to move, or in the backlog) longer than AGENT_FAILOVER_STUCK_AFTER "
            "while agents have free slots: should be 0",
            registry=r,
        )
        self._stuck_moving = self._stuck_backlog = 0
        self.stuck.set_function(lambda: float(self._stuck_moving + self._stuck_backlog))
        self.oldest_checkpoint_age = Gauge(
            f"{PREFIX}oldest_checkpoint_age_seconds",
            "Age of the oldest running task's latest checkpoint (or claim, before its first)",
            registry=r,
        )
        self.consumer_lag = Gauge(
            f"{PREFIX}consumer_lag_records",
            "Records of the owned partitions this worker has not consumed yet",
            ["topic"],
            registry=r,
        )
        self.heartbeat_timeout = Gauge(
            f"{PREFIX}heartbeat_timeout_seconds", "The configured heartbeat timeout", registry=r
        )
        self.fleet_targets = Gauge(
            f"{PREFIX}fleet_targets",
            "Healthy agents other workers list in the fleet directory (candidate targets)",
            registry=r,
        )

        # -- counters -------------------------------------------------------------------------
        self.heartbeats = Counter(
            f"{PREFIX}heartbeats_consumed", "Valid heartbeats consumed", registry=r
        )
        self.failovers = Counter(
            f"{PREFIX}failovers",
            "Decisions written, by reason: one fence per dead epoch, or one dispatch of tasks "
            "of one epoch",
            ["reason"],
            registry=r,
        )
        self.tasks_moved = Counter(
            f"{PREFIX}tasks_moved",
            "Tasks re-dispatched to another agent (applied plan entries), by reason",
            ["reason"],
            registry=r,
        )
        self.tasks_dispatched = Counter(
            f"{PREFIX}tasks_dispatched",
            "New tasks from the task topic dispatched to an agent (decisions forwarded)",
            registry=r,
        )
        self.tasks_completed = Counter(
            f"{PREFIX}tasks_completed", "Tasks reported completed", registry=r
        )
        self.tasks_failed = Counter(
            f"{PREFIX}tasks_failed", "Tasks reported failed by their handler", registry=r
        )
        self.dead_letters = Counter(
            f"{PREFIX}dead_letters",
            "Bad records set aside to the dead-letter topic, by topic, reason and writer "
            "(source agent: counted by the one worker that reads that topic)",
            ["topic", "reason", "source"],
            registry=r,
        )
        self.dead_letters_lost = Counter(
            f"{PREFIX}dead_letters_lost",
            "Dead letters this worker could not write (the broker refused or did not answer): "
            "the bad record was skipped all the same, its copy is only in the log",
            ["topic"],
            registry=r,
        )
        self.duplicates = Counter(
            f"{PREFIX}decisions_duplicate",
            "Decisions ignored because an earlier one won",
            registry=r,
        )
        self.rejected = Counter(
            f"{PREFIX}events_rejected",
            "Valid task events and re-dispatches not applied, by reason",
            ["reason"],
            registry=r,
        )

        # -- histograms -----------------------------------------------------------------------
        self.arrival_lag = BatchHistogram(
            f"{PREFIX}heartbeat_arrival_lag_seconds",
            "Heartbeat receipt (monitor wall clock) minus its sent_at (agent clock)",
            ARRIVAL_LAG_BUCKETS,
            r,
        )
        self.detection_delay = self._histogram(
            "detection_delay_seconds",
            "How long after the heartbeat timeout a silent epoch was fenced",
            DETECTION_DELAY_BUCKETS,
        )
        self.recovery = self._histogram(
            "recovery_seconds",
            "Decision issued to the moved task resumed (claimed by its new attempt), per task",
            RECOVERY_BUCKETS,
        )
        self.rto = self._histogram(
            "rto_seconds",
            "Last heartbeat of the failed epoch to its task resumed elsewhere, per task",
            RTO_BUCKETS,
        )
        self.rpo_steps = self._histogram(
            "rpo_steps",
            "Steps lost per task moved off a failed epoch: the last step it reported minus the "
            "step resumed from",
            RPO_STEP_BUCKETS,
        )
        self.rpo_seconds = self._histogram(
            "rpo_seconds",
            "Progress lost per task moved off a failed epoch: its last heartbeat minus when the "
            "checkpoint resumed from was reported",
            RPO_SECONDS_BUCKETS,
        )
        self.apply_seconds = self._histogram(
            "decision_apply_seconds",
            "Decision issued to applied (re-dispatches acknowledged)",
            APPLY_BUCKETS,
        )
        self.tick_seconds = self._histogram(
            "tick_duration_seconds", "One detection tick", TICK_BUCKETS
        )
        self._zero_labels()

    def _histogram(self, name: str, documentation: str, buckets: Sequence[float]) -> Histogram:
        return Histogram(PREFIX + name, documentation, buckets=buckets, registry=self.registry)

    def _zero_labels(self) -> None:
        """Create every series of the fixed label sets, so each exists at 0 from the start."""
        for state in STATES:
            for pool in POOLS:
                self.agents.labels(state=state, pool=pool)
        for pool in POOLS:
            self.free_slots.labels(pool=pool)
        for topic in LAG_TOPICS:
            self.consumer_lag.labels(topic=topic)
        for reason in REASONS:
            self.failovers.labels(reason=reason)
            self.tasks_moved.labels(reason=reason)
        for rejection in REJECTIONS:
            self.rejected.labels(reason=rejection)
        for topic in DEAD_LETTER_TOPICS:
            self.dead_letters_lost.labels(topic=topic)
            for refusal in REFUSALS:
                for source in SOURCES:
                    self.dead_letters.labels(topic=topic, reason=refusal, source=source)

    # -- what the parts report ------------------------------------------------------------------

    def set_health(self, counts: Mapping[tuple[Health, Pool], int]) -> None:
        """Publish how many owned agents are in each health state, by pool."""
        for state in Health:
            for pool in Pool:
                self.agents.labels(state=state.value, pool=pool.value).set(
                    counts.get((state, pool), 0)
                )

    def set_free_slots(self, free: Mapping[Pool, int]) -> None:
        """Publish the free slots of the owned healthy agents, by pool."""
        for pool in Pool:
            self.free_slots.labels(pool=pool.value).set(free.get(pool, 0))

    def heartbeats_received(self, sent_at: Sequence[float], received_at: float) -> None:
        """Count valid heartbeats (given by their ``sent_at``) received at wall time
        ``received_at``; called by the heartbeat thread once per batch."""
        self.heartbeats.inc(len(sent_at))
        self.arrival_lag.observe_many(received_at - s for s in sent_at)

    def dead_letter(self, topic: str, reason: str, source: str = MONITOR) -> None:
        """Count a dead letter of ``topic`` (its logical name) for ``reason``."""
        self.dead_letters.labels(topic=topic, reason=reason, source=source).inc()

    def dead_letter_lost(self, topic: str) -> None:
        """Count a dead letter of ``topic`` (its logical name) that could not be written."""
        self.dead_letters_lost.labels(topic=topic).inc()

    def set_backlog(self, backlog: int, stuck: int) -> None:
        """For the intake: tasks in the owned partitions of the task topic not yet dispatched,
        and how many of them waited longer than the stuck limit while agents had free slots."""
        self.backlog.set(backlog)
        self._stuck_backlog = stuck

    def set_stuck_moving(self, stuck: int) -> None:
        """Tasks that must move and waited longer than the stuck limit while agents had free
        slots."""
        self._stuck_moving = stuck

    def bind_probes(self, ready: Callable[[], bool], broker_up: Callable[[], bool]) -> None:
        """Read ``agent_failover_ready`` and ``agent_failover_broker_up`` from these at scrape
        time, so they always agree with ``/readyz``."""
        self.ready.set_function(lambda: float(ready()))
        self.broker_up.set_function(lambda: float(broker_up()))
