"""Prometheus metrics of a monitor worker, in a registry of their own.

A registry per :class:`MonitorMetrics` (not the process-wide default) lets tests and a process
that builds several apps create them again without "duplicated timeseries" errors.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from streams.detection import Health

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_DETECTION_BUCKETS = (0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0)


class MonitorMetrics:
    """Every metric the monitor exports (names prefixed ``agent_failover_``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.agents = Gauge(
            "agent_failover_agents", "Agents owned by this worker, by health", ["state"], registry=r
        )
        self.failovers = Counter(
            "agent_failover_failovers_total", "Decisions written, by reason", ["reason"], registry=r
        )
        self.redispatched = Counter(
            "agent_failover_tasks_redispatched_total",
            "Tasks re-dispatched to tasks.priority (applied plan entries)",
            registry=r,
        )
        self.detection_seconds = Histogram(
            "agent_failover_detection_seconds",
            "Last heartbeat (monitor clock) to fence decision",
            buckets=_DETECTION_BUCKETS,
            registry=r,
        )
        self.apply_seconds = Histogram(
            "agent_failover_decision_apply_seconds",
            "Decision issued to decision applied (re-dispatches acknowledged)",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.dead_letters = Counter(
            "agent_failover_dead_letters_total",
            "Invalid records sent to the dead-letter topic, by source topic",
            ["topic"],
            registry=r,
        )
        self.heartbeats = Counter(
            "agent_failover_heartbeats_consumed_total", "Heartbeats consumed", registry=r
        )
        self.rejected = Counter(
            "agent_failover_events_rejected_total",
            "Valid events not applied (fenced epoch, superseded attempt, duplicate...)",
            ["reason"],
            registry=r,
        )
        self.duplicates = Counter(
            "agent_failover_duplicate_decisions_total",
            "Control records ignored because an earlier decision won",
            registry=r,
        )
        self.no_healthy_agent = Gauge(
            "agent_failover_no_healthy_agent",
            "Tasks waiting because no healthy agent has free capacity (alert when > 0)",
            registry=r,
        )
        self.fleet_targets = Gauge(
            "agent_failover_fleet_targets",
            "Healthy agents other workers report in the fleet directory (candidate targets)",
            registry=r,
        )
        self.queued = Gauge(
            "agent_failover_tasks_queued", "Tasks waiting for a dispatch decision", registry=r
        )

    def set_health(self, counts: Mapping[Health, int]) -> None:
        """Publish how many owned agents are in each health state."""
        for state in Health:
            self.agents.labels(state=state.value).set(counts.get(state, 0))

    def serve(self, port: int) -> None:
        """Serve ``/metrics`` on ``port`` (0: any free port) from a daemon thread."""
        start_http_server(port, registry=self.registry)
