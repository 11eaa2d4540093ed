"""The alerts and the dashboard's queries, checked by promtool: the rules of the rendered
PrometheusRule pass ``promtool check rules`` and the unit tests of rules/alerts.test.yaml
(every alert fires when it should and stays quiet when it should not); every dashboard query
parses as PromQL; every metric they use is one the monitor serves (metrics contract); every
alert's runbook section exists in docs/operations.md."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ops.conftest import CHART, REPO, OpsTools, find, render

TESTS = Path(__file__).parent / "rules/alerts.test.yaml"
OPERATIONS = REPO / "docs/operations.md"

# Metric names of the monitor's metrics contract (plus Prometheus's own `up`).
_SERIES = """
build_info ready broker_up partitions_owned agents agent_free_slots tasks_waiting_for_agent
tasks_backlog tasks_stuck oldest_checkpoint_age_seconds consumer_lag_records
heartbeat_timeout_seconds fleet_targets heartbeats_consumed_total failovers_total
tasks_moved_total tasks_dispatched_total tasks_completed_total tasks_failed_total
dead_letters_total dead_letters_lost_total decisions_duplicate_total events_rejected_total
"""
_HISTOGRAMS = """
heartbeat_arrival_lag_seconds detection_delay_seconds recovery_seconds rto_seconds rpo_steps
rpo_seconds decision_apply_seconds tick_duration_seconds
"""
CONTRACT_METRICS = (
    {"up"}
    | {f"agent_failover_{name}" for name in _SERIES.split()}
    | {f"agent_failover_{name}_bucket" for name in _HISTOGRAMS.split()}
)


def rendered_rules(ops_tools: OpsTools) -> list[dict[str, Any]]:
    """The rule groups of the PrometheusRule, defaults, release "af" in namespace "ops"."""
    docs = render(ops_tools("HELM_V4"), ["prometheusRule.enabled=true"])
    groups: list[dict[str, Any]] = find(docs, "PrometheusRule")["spec"]["groups"]
    return groups


def promtool(ops_tools: OpsTools, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ops_tools("PROMTOOL"), *args], capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture
def rules_dir(ops_tools: OpsTools, tmp_path: Path) -> Path:
    """The rendered rules as a Prometheus rule file, beside a copy of the unit tests."""
    (tmp_path / "alerts.rules.yaml").write_text(
        yaml.safe_dump({"groups": rendered_rules(ops_tools)}, sort_keys=False)
    )
    shutil.copy(TESTS, tmp_path / TESTS.name)
    return tmp_path


def test_rules_pass_promtool_check(ops_tools: OpsTools, rules_dir: Path) -> None:
    done = promtool(ops_tools, "check", "rules", str(rules_dir / "alerts.rules.yaml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 12 rules found" in done.stdout


def test_alert_unit_tests(ops_tools: OpsTools, rules_dir: Path) -> None:
    done = promtool(ops_tools, "test", "rules", str(rules_dir / TESTS.name))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_is_unit_tested_both_ways(ops_tools: OpsTools) -> None:
    alerts = {r["alert"] for g in rendered_rules(ops_tools) for r in g["rules"]}
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(TESTS.read_text())["tests"]:
        for check in case["alert_rule_test"]:
            (fires if check["exp_alerts"] else quiet).add(check["alertname"])
    assert alerts - fires == set(), "alerts without a firing case"
    assert alerts - quiet == set(), "alerts without a quiet case"


def test_every_alert_has_its_runbook(ops_tools: OpsTools) -> None:
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in OPERATIONS.read_text().splitlines()
        if line.startswith("#")
    }
    for group in rendered_rules(ops_tools):
        for rule in group["rules"]:
            anchor = rule["annotations"]["runbook_url"].partition("#")[2]
            assert anchor in headings, f"{rule['alert']}: no section #{anchor} in {OPERATIONS}"
            for key in ("summary", "description"):
                assert rule["annotations"][key].strip(), (rule["alert"], key)


def dashboard_queries(ops_tools: OpsTools) -> list[str]:
    """Every query of the committed dashboard, as tools/dashboard.py lists them."""
    done = subprocess.run(
        [ops_tools("TOOLS_PYTHON"), str(REPO / "tools/dashboard.py"), "--queries"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return [json.loads(line) for line in done.stdout.splitlines()]


def concrete(expr: str) -> str:
    """A Grafana query with its variables replaced by what Grafana would send."""
    return (
        expr.replace("$__rate_interval", "1m")
        .replace("$namespace", "ops")
        .replace("$job", "af-agent-failover-monitor")
    )


def test_dashboard_queries_are_valid_promql(ops_tools: OpsTools, tmp_path: Path) -> None:
    queries = dashboard_queries(ops_tools)
    assert len(queries) >= 30
    rules = [{"record": f"dashboard:query_{n}", "expr": concrete(q)} for n, q in enumerate(queries)]
    path = tmp_path / "dashboard.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = promtool(ops_tools, "check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules)} rules found" in done.stdout


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b(agent_failover_[a-z_]+|up)\b\s*[{(\[]", expr))


def test_queries_use_only_contract_metrics(ops_tools: OpsTools) -> None:
    used: set[str] = set()
    for expr in dashboard_queries(ops_tools):
        used |= metric_names(expr)
    for group in rendered_rules(ops_tools):
        for rule in group["rules"]:
            used |= metric_names(rule["expr"])
    assert used - CONTRACT_METRICS == set()
    assert len(used) >= 25


def test_dashboard_in_chart_is_the_committed_json() -> None:
    board = json.loads((CHART / "dashboards/agent-failover.json").read_text())
    assert board["uid"] == "agent-failover-monitor"
    assert {v["name"] for v in board["templating"]["list"]} == {"datasource", "namespace", "job"}
