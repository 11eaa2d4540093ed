"""The metrics registry: the contract's names, every label value at 0 from the start, the
collectors an operator expects, and docs/metrics.md written from it."""

from __future__ import annotations

import itertools

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from agent_failover import __version__
from agent_failover.streams.metrics import (
    DEAD_LETTER_TOPICS,
    LAG_TOPICS,
    POOLS,
    REASONS,
    REFUSALS,
    REJECTIONS,
    SOURCES,
    STATES,
    BatchHistogram,
    MonitorMetrics,
)
from agent_failover.streams.metricsdoc import (
    ACROSS,
    DOC,
    NOT_YET,
    exported_name,
    families,
    rewrite,
    table,
)

GAUGES = {
    "agent_failover_build_info",
    "agent_failover_ready",
    "agent_failover_broker_up",
    "agent_failover_partitions_owned",
    "agent_failover_agents",
    "agent_failover_agent_free_slots",
    "agent_failover_tasks_waiting_for_agent",
    "agent_failover_tasks_backlog",
    "agent_failover_tasks_stuck",
    "agent_failover_oldest_checkpoint_age_seconds",
    "agent_failover_consumer_lag_records",
    "agent_failover_heartbeat_timeout_seconds",
    "agent_failover_fleet_targets",
}
COUNTERS = {
    "agent_failover_heartbeats_consumed_total",
    "agent_failover_failovers_total",
    "agent_failover_tasks_moved_total",
    "agent_failover_tasks_dispatched_total",
    "agent_failover_tasks_completed_total",
    "agent_failover_tasks_failed_total",
    "agent_failover_dead_letters_total",
    "agent_failover_dead_letters_lost_total",
    "agent_failover_decisions_duplicate_total",
    "agent_failover_events_rejected_total",
}
HISTOGRAMS = {
    "agent_failover_heartbeat_arrival_lag_seconds",
    "agent_failover_detection_delay_seconds",
    "agent_failover_recovery_seconds",
    "agent_failover_rto_seconds",
    "agent_failover_rpo_steps",
    "agent_failover_rpo_seconds",
    "agent_failover_decision_apply_seconds",
    "agent_failover_tick_duration_seconds",
}


@pytest.fixture(scope="module")
def metrics() -> MonitorMetrics:
    return MonitorMetrics()


def value(m: MonitorMetrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_the_registry_exports_exactly_the_contracts_metrics(metrics: MonitorMetrics) -> None:
    kinds = {exported_name(f): f.type for f in families(metrics)}
    assert kinds == {
        **dict.fromkeys(GAUGES, "gauge"),
        **dict.fromkeys(COUNTERS, "counter"),
        **dict.fromkeys(HISTOGRAMS, "histogram"),
    }


def test_every_label_value_exists_at_zero_from_the_start(metrics: MonitorMetrics) -> None:
    for state, pool in itertools.product(STATES, POOLS):
        assert value(metrics, "agent_failover_agents", state=state, pool=pool) == 0
    for pool in POOLS:
        assert value(metrics, "agent_failover_agent_free_slots", pool=pool) == 0
    for topic in LAG_TOPICS:
        assert value(metrics, "agent_failover_consumer_lag_records", topic=topic) == 0
    for reason in REASONS:
        assert value(metrics, "agent_failover_failovers_total", reason=reason) == 0
        assert value(metrics, "agent_failover_tasks_moved_total", reason=reason) == 0
    for reason in REJECTIONS:
        assert value(metrics, "agent_failover_events_rejected_total", reason=reason) == 0
    for topic, reason, source in itertools.product(DEAD_LETTER_TOPICS, REFUSALS, SOURCES):
        labels = {"topic": topic, "reason": reason, "source": source}
        assert value(metrics, "agent_failover_dead_letters_total", **labels) == 0
    for topic in DEAD_LETTER_TOPICS:
        assert value(metrics, "agent_failover_dead_letters_lost_total", topic=topic) == 0
    for name in (
        "agent_failover_heartbeats_consumed_total",
        "agent_failover_tasks_dispatched_total",
        "agent_failover_tasks_completed_total",
        "agent_failover_tasks_failed_total",
        "agent_failover_decisions_duplicate_total",
    ):
        assert value(metrics, name) == 0, name
    for name in HISTOGRAMS:
        assert value(metrics, f"{name}_count") == 0, name
    assert value(metrics, "agent_failover_ready") == 0
    assert value(metrics, "agent_failover_broker_up") == 0
    assert value(metrics, "agent_failover_tasks_stuck") == 0


def test_the_label_sets_are_the_contracts() -> None:
    assert set(STATES) == {"healthy", "degraded", "failed", "stopped", "unknown"}
    assert set(POOLS) == {"active", "standby"}
    contract = {"heartbeats", "task-events", "control", "tasks.priority", "tasks"}
    # Beyond the contract: the intake's decisions, read by the monitor like the others.
    assert set(LAG_TOPICS) == contract | {"tasks.assigned"}
    assert set(DEAD_LETTER_TOPICS) == contract | {"tasks.assigned", "checkpoints", "fleet"}
    assert set(REFUSALS) == {
        "not_json",
        "invalid",
        "unsupported_version",
        "wrong_partition",
        "too_large",
        "bad_signature",
        "internal",
    }
    assert {"heartbeat_timeout", "restarted", "released", "stopped", "late_claim", "queued"} <= set(
        REASONS
    )
    assert set(REJECTIONS) == {
        "fenced_epoch",
        "superseded_attempt",
        "unknown_task",
        "stale_epoch",
        "duplicate",
    }


def test_no_created_series_and_the_process_and_python_collectors(metrics: MonitorMetrics) -> None:
    text = generate_latest(metrics.registry).decode()
    assert "_created" not in text
    assert "\nprocess_cpu_seconds_total " in text and "\npython_info{" in text
    assert "python_gc_objects_collected_total" in text
    assert value(metrics, "agent_failover_build_info", version=__version__) == 1


def test_ready_and_broker_up_are_read_from_the_probes_at_scrape_time() -> None:
    m = MonitorMetrics()
    state = {"ready": False, "up": True}
    m.bind_probes(lambda: state["ready"], lambda: state["up"])
    assert (value(m, "agent_failover_ready"), value(m, "agent_failover_broker_up")) == (0, 1)
    state.update(ready=True, up=False)
    assert (value(m, "agent_failover_ready"), value(m, "agent_failover_broker_up")) == (1, 0)


def test_stuck_adds_the_moving_and_the_backlog_shares() -> None:
    m = MonitorMetrics()
    m.set_stuck_moving(2)
    assert value(m, "agent_failover_tasks_stuck") == 2
    m.set_backlog(40, 3)
    assert value(m, "agent_failover_tasks_stuck") == 5
    assert value(m, "agent_failover_tasks_backlog") == 40


def test_heartbeats_count_and_their_arrival_lag_is_a_histogram() -> None:
    m = MonitorMetrics()
    m.heartbeats_received([10.0, 9.99, 10.5], received_at=10.02)  # the last one's clock is ahead
    assert value(m, "agent_failover_heartbeats_consumed_total") == 3
    name = "agent_failover_heartbeat_arrival_lag_seconds"
    assert value(m, f"{name}_bucket", le="0.001") == 1  # -0.48 counts as 0
    assert value(m, f"{name}_bucket", le="0.025") == 2
    assert value(m, f"{name}_bucket", le="0.01") == 1
    assert value(m, f"{name}_bucket", le="+Inf") == 3
    assert value(m, f"{name}_count") == 3
    assert value(m, f"{name}_sum") == pytest.approx(0.02 + 0.03)


def test_a_batch_histogram_counts_a_value_on_a_bound_in_that_bucket() -> None:
    registry = CollectorRegistry()
    h = BatchHistogram("x_seconds", "x", (0.5, 1.0), registry)
    h.observe_many([0.5, 1.0, 1.0000001, 3.0])
    h.observe_many([])
    assert registry.get_sample_value("x_seconds_bucket", {"le": "0.5"}) == 1
    assert registry.get_sample_value("x_seconds_bucket", {"le": "1.0"}) == 2
    assert registry.get_sample_value("x_seconds_bucket", {"le": "+Inf"}) == 4
    assert registry.get_sample_value("x_seconds_sum") == pytest.approx(5.5000001)


def test_docs_metrics_md_is_the_table_the_registry_writes(metrics: MonitorMetrics) -> None:
    text = DOC.read_text()
    expected = rewrite(text, table(families(metrics)))
    assert text == expected, (
        "docs/metrics.md is stale: run `.venv/bin/python -m agent_failover.streams.metricsdoc`"
    )


def test_every_metric_says_how_to_add_it_up_across_workers(metrics: MonitorMetrics) -> None:
    names = {exported_name(f) for f in families(metrics)}
    assert set(ACROSS) == names
    assert set(NOT_YET) <= names


def test_rewrite_refuses_a_document_without_its_markers() -> None:
    with pytest.raises(ValueError, match="markers"):
        rewrite("no table here\n", "| x |\n")
