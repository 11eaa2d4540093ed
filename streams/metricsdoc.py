"""The metrics table of ``docs/metrics.md``, written from the registry itself.

``python -m agent_failover.streams.metricsdoc`` rewrites the table between the two markers of
that file; a test checks that the file holds exactly what this module writes, so the
documentation cannot drift from the code. Each metric's meaning is its help text; this module
adds only how to add it up across monitor workers (:data:`ACROSS`), which the registry does not
know.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

from prometheus_client.core import Metric

from agent_failover.streams.metrics import PREFIX, MonitorMetrics

DOC = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"
BEGIN = (
    "<!-- metrics table: written by `python -m agent_failover.streams.metricsdoc`, do not edit -->"
)
END = "<!-- end of metrics table -->"

_SUM = "`sum`: each worker counts only its own partitions"
_RATE = "`sum(rate(...))`"
_QUANTILE = "`sum by (le) (rate(..._bucket))`, then `histogram_quantile`"

#: How to add each metric up across workers, by its name as exported.
ACROSS = {
    "agent_failover_build_info": "per worker: `count by (version)` shows a rolling upgrade",
    "agent_failover_ready": "per worker; `min` is 1 when every worker is ready",
    "agent_failover_broker_up": "per worker; `min` is 1 when every worker reaches the broker",
    "agent_failover_partitions_owned": "`sum` is the agent partition count when all are owned",
    "agent_failover_agents": _SUM,
    "agent_failover_agent_free_slots": _SUM,
    "agent_failover_tasks_waiting_for_agent": _SUM,
    "agent_failover_tasks_backlog": _SUM,
    "agent_failover_tasks_stuck": _SUM,
    "agent_failover_oldest_checkpoint_age_seconds": "`max`",
    "agent_failover_consumer_lag_records": "per worker (`max by (topic)`), or `sum` for the fleet",
    "agent_failover_heartbeat_timeout_seconds": "per worker: the same setting everywhere",
    "agent_failover_fleet_targets": "per worker: each counts the other workers' agents; no `sum`",
    "agent_failover_heartbeats_consumed_total": _RATE,
    "agent_failover_failovers_total": _RATE,
    "agent_failover_tasks_moved_total": _RATE,
    "agent_failover_tasks_dispatched_total": _RATE,
    "agent_failover_tasks_completed_total": _RATE,
    "agent_failover_tasks_failed_total": _RATE,
    "agent_failover_dead_letters_total": _RATE,
    "agent_failover_dead_letters_lost_total": _RATE,
    "agent_failover_decisions_duplicate_total": _RATE,
    "agent_failover_events_rejected_total": _RATE,
    "agent_failover_heartbeat_arrival_lag_seconds": _QUANTILE,
    "agent_failover_detection_delay_seconds": _QUANTILE,
    "agent_failover_recovery_seconds": _QUANTILE,
    "agent_failover_rto_seconds": _QUANTILE,
    "agent_failover_rpo_steps": _QUANTILE,
    "agent_failover_rpo_seconds": _QUANTILE,
    "agent_failover_decision_apply_seconds": _QUANTILE,
    "agent_failover_tick_duration_seconds": _QUANTILE,
}

#: What a figure does not count.
NOT_YET: dict[str, str] = {}


def exported_name(metric: Metric) -> str:
    """The name a metric family is scraped under (counters with their ``_total``)."""
    return metric.name + "_total" if metric.type == "counter" else metric.name


def families(metrics: MonitorMetrics) -> list[Metric]:
    """The worker's own metric families, in registration order (not the process collectors)."""
    return [m for m in metrics.registry.collect() if m.name.startswith(PREFIX)]


def _labels(metric: Metric) -> str:
    values: dict[str, list[str]] = {}
    buckets: list[str] = []
    for sample in metric.samples:
        for name, value in sample.labels.items():
            if name == "le":
                if value not in buckets and value != "+Inf":
                    buckets.append(value)
            elif value not in values.setdefault(name, []):
                values[name].append(value)
    parts = [f"`{name}`: {', '.join(vs)}" for name, vs in values.items()]
    if buckets:
        parts.append("buckets: " + ", ".join(buckets))
    return "<br>".join(parts)


def _meaning(metric: Metric) -> str:
    note = NOT_YET.get(exported_name(metric))
    return metric.documentation + (f" ({note})" if note else "")


def table(metrics: Iterable[Metric]) -> str:
    """The markdown table of ``metrics``, between the markers."""
    rows = [
        BEGIN,
        "| metric | type | labels | meaning | across workers |",
        "|---|---|---|---|---|",
    ]
    for m in metrics:
        name = exported_name(m)
        across = ACROSS.get(name, "?")
        rows.append(f"| `{name}` | {m.type} | {_labels(m)} | {_meaning(m)} | {across} |")
    rows.append(END)
    return "\n".join(rows) + "\n"


def rewrite(text: str, new_table: str) -> str:
    """``text`` with the part between the markers (both included) replaced by ``new_table``."""
    head, sep, rest = text.partition(BEGIN)
    _, sep2, tail = rest.partition(END + "\n")
    if not sep or not sep2:
        raise ValueError(f"{DOC} lacks the markers {BEGIN!r} and {END!r}")
    return head + new_table + tail


def main() -> None:
    """Rewrite the table of docs/metrics.md from a fresh registry."""
    text = DOC.read_text()
    DOC.write_text(rewrite(text, table(families(MonitorMetrics()))))
    print(f"wrote the metrics table of {DOC}", file=sys.stderr)


if __name__ == "__main__":
    main()
