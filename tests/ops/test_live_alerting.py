"""Live: a real Prometheus scrapes a running monitor on loopback with the chart's rules loaded;
every agent is killed; the page fires and a real Alertmanager delivers it to a webhook."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from agent_failover.dev.waiting import eventually
from tests.integration.conftest import Scenario, scenario_factory
from tests.ops.alerting import WebhookReceiver, free_port, http_get, pipeline
from tests.ops.conftest import NAMESPACE, OpsTools, find, render

__all__ = ["scenario_factory"]  # the end-to-end scenarios' fixture, used here as is

JOB = "af-agent-failover-monitor"
# What the no-healthy-agent alert reads: without these the monitor predates the metrics contract.
NEEDED = ("agent_failover_tasks_waiting_for_agent", "agent_failover_agent_free_slots")
AGENTS = ["agent-a", "agent-b"]


def rule_groups(ops_tools: OpsTools) -> list[dict[str, Any]]:
    """The chart's alerts, with the page's `for` shortened so the test waits seconds."""
    docs = render(
        ops_tools("HELM_V4"),
        ["prometheusRule.enabled=true", "prometheusRule.alerts.noHealthyAgent.for=2s"],
    )
    groups: list[dict[str, Any]] = find(docs, "PrometheusRule")["spec"]["groups"]
    return groups


def chart_pipeline(
    ops_tools: OpsTools, workdir: Path, port: int
) -> contextlib.AbstractContextManager[WebhookReceiver]:
    """The alerting chain with the chart's rules, scraping 127.0.0.1:``port`` as the monitor."""
    return pipeline(
        ops_tools("PROMETHEUS"),
        ops_tools("ALERTMANAGER"),
        workdir,
        job=JOB,
        target=f"127.0.0.1:{port}",
        target_labels={"namespace": NAMESPACE},
        rule_groups=rule_groups(ops_tools),
    )


def firing(webhook: WebhookReceiver, alertname: str) -> list[dict[str, Any]]:
    return [
        a
        for a in webhook.alerts()
        if a["labels"].get("alertname") == alertname and a["status"] == "firing"
    ]


def test_pipeline_delivers_a_chart_alert(ops_tools: OpsTools, tmp_path: Path) -> None:
    """The harness itself: the chart's rules in a real Prometheus, fed by a prometheus-client
    endpoint showing the fleet the page is about, reach the webhook through Alertmanager."""
    registry = CollectorRegistry()
    Gauge("agent_failover_tasks_waiting_for_agent", "", registry=registry).set(3)
    Gauge("agent_failover_agent_free_slots", "", ["pool"], registry=registry).labels(
        pool="active"
    ).set(0)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        with chart_pipeline(ops_tools, tmp_path, port) as webhook:
            alerts = eventually(
                lambda: firing(webhook, "AgentFailoverNoHealthyAgent"),
                90,
                "the page to reach the webhook",
            )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    assert alerts[0]["labels"]["severity"] == "page"
    assert alerts[0]["annotations"]["description"].startswith("3 tasks")


@pytest.mark.broker
@pytest.mark.slow
def test_no_healthy_agent_pages_through_alertmanager(
    ops_tools: OpsTools, scenario_factory: Callable[..., Scenario], tmp_path: Path
) -> None:
    ops_tools("PROMETHEUS"), ops_tools("ALERTMANAGER")  # skip before starting anything
    port = free_port()
    s = scenario_factory(metrics_port=str(port), metrics_host="127.0.0.1", capacity="1")
    s.cluster.start_monitor()
    procs = s.start_agents(AGENTS)
    s.wait_monitor_ready()
    metrics = eventually(
        lambda: http_get(f"http://127.0.0.1:{port}/metrics"), 60, "the monitor's /metrics"
    )
    missing = [name for name in NEEDED if name not in metrics]
    if missing:
        pytest.skip(f"the monitor does not serve {', '.join(missing)} yet (metrics contract)")

    with chart_pipeline(ops_tools, tmp_path, port) as webhook:
        s.submit(4, steps=60)
        s.wait(lambda: all(s.held_by(a) for a in AGENTS), 60, "both agents to hold a task")
        for proc in procs.values():
            proc.signal(signal.SIGKILL)
        alerts = eventually(
            lambda: firing(webhook, "AgentFailoverNoHealthyAgent"),
            120,
            "the page to reach the webhook",
        )

    alert = alerts[0]
    assert alert["labels"]["severity"] == "page"
    assert alert["annotations"]["runbook_url"].endswith("#agentfailovernohealthyagent")
    assert "wait for a healthy agent" in alert["annotations"]["description"]
